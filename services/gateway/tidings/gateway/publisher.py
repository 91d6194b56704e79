"""Publishing accepted user messages to Kafka, bounded in time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from tidings.common.events import CancelRequest, UserMessage
from tidings.common.kafka import publish
from tidings.common.tracing import TRACEPARENT_HEADER
from tidings.gateway.metrics import PUBLISH_FAILURES, PUBLISH_SECONDS


class PublishError(Exception):
    """The broker did not acknowledge the message in time."""


class Publisher(Protocol):
    """Where `POST /chat` sends accepted messages."""

    @property
    def running(self) -> bool:
        """True while messages can be sent."""
        ...

    async def publish(self, message: UserMessage | CancelRequest, *, traceparent: str) -> None:
        """Return once the message is durably accepted; raise `PublishError` otherwise."""
        ...


class KafkaPublisher:
    """Sends to `user_messages`, keyed by session, and waits for the broker's acknowledgement."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        *,
        timeout_s: float,
        broker_up: Callable[[], bool] = lambda: True,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s
        self._broker_up = broker_up
        self.running = True

    async def publish(self, message: UserMessage | CancelRequest, *, traceparent: str) -> None:
        """Send and wait; a broker that is down or slow becomes `PublishError` after the timeout.

        On a timeout the record may still be written later; the client sees 503 and may
        retry, which can at worst produce one duplicate question, never a lost one.
        """
        if not self._broker_up():
            # The broker watch already knows: answer at once instead of waiting the timeout.
            PUBLISH_FAILURES.inc()
            raise PublishError("broker unreachable")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                await publish(
                    self._producer,
                    self._topic,
                    message,
                    key=message.session_id,
                    headers=[(TRACEPARENT_HEADER, traceparent.encode())],
                )
        except (KafkaError, TimeoutError) as exc:
            PUBLISH_FAILURES.inc()
            raise PublishError(str(exc) or type(exc).__name__) from exc
        PUBLISH_SECONDS.observe(time.perf_counter() - started)
