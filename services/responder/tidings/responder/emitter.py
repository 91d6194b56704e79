"""Publish the events of one answer to `model_responses`, keyed by session, with trace context."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from tidings.common.events import ResponseEvent, is_terminal
from tidings.common.tracing import TRACEPARENT_HEADER
from tidings.responder.router import EmitError


class KafkaEmitter:
    """An `Emit` callback for one attempt.

    Start and delta events are handed to the producer without waiting for the broker, so a
    slow acknowledgement never delays the stream; the terminal event returns only once it
    and every earlier event of the attempt are acknowledged, which is what allows the
    consumer to commit the message afterwards.
    """

    def __init__(
        self, producer: AIOKafkaProducer, topic: str, *, key: str, traceparent: str
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._key = key.encode()
        self._headers = [(TRACEPARENT_HEADER, traceparent.encode())]
        self._pending: list[asyncio.Future[object]] = []

    async def __call__(self, event: ResponseEvent) -> None:
        try:
            self._raise_failed()
            future = await self._producer.send(
                self._topic, event.to_bytes(), key=self._key, headers=self._headers
            )
            self._pending.append(future)
            if is_terminal(event):
                pending, self._pending = self._pending, []
                await asyncio.gather(*pending)
        except KafkaError as exc:
            raise EmitError(f"could not publish {type(event).__name__}: {exc!r}") from exc

    def _raise_failed(self) -> None:
        """Surface a failed earlier send before publishing more of a broken stream."""
        still: list[asyncio.Future[object]] = []
        for future in self._pending:
            if not future.done():
                still.append(future)
            elif (error := future.exception()) is not None:
                raise error
        self._pending = still
