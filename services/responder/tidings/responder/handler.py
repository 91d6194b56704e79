"""What happens to one `user_messages` record: parse, answer, or dead-letter.

Returning normally means the record is finished and may be committed. Raising means the
responder cannot go on (the broker stays unreachable); the record stays uncommitted and is
redelivered after a restart.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from tidings.common.events import parse_user_message
from tidings.common.kafka import dead_letter
from tidings.common.logging import bind, get_logger
from tidings.common.settings import KafkaSettings
from tidings.common.tracing import child_traceparent, trace_id_of, traceparent_from_headers
from tidings.responder import metrics
from tidings.responder.emitter import KafkaEmitter
from tidings.responder.partition import Record
from tidings.responder.router import EmitError, Router

log = get_logger(__name__)


class MessageHandler:
    """Answers one record with `router`, publishing through `producer`."""

    def __init__(
        self,
        router: Router,
        producer: AIOKafkaProducer,
        kafka: KafkaSettings,
        *,
        group_id: str,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self._router = router
        self._producer = producer
        self._kafka = kafka
        self._group_id = group_id
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s

    async def __call__(self, record: Record) -> None:
        parent = traceparent_from_headers(list(record.headers or ()))
        try:
            message = parse_user_message(record.value or b"")
        except ValidationError as exc:
            await self._dead_letter(record, f"invalid user_message.v1: {_summary(exc)}")
            return
        with bind(
            session_id=message.session_id,
            message_id=message.message_id,
            trace_id=trace_id_of(parent),
        ):
            for attempt in range(1, self._max_attempts + 1):
                emit = KafkaEmitter(
                    self._producer,
                    self._kafka.model_responses_topic,
                    key=message.session_id,
                    traceparent=child_traceparent(parent),
                )
                try:
                    await self._router.answer(message, emit)
                    return
                except EmitError as exc:
                    if attempt == self._max_attempts:
                        raise
                    log.warning("publishing the answer failed; retrying", error=str(exc))
                    await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
                except Exception as exc:
                    # A message that breaks the responder must not stop its partition forever.
                    log.exception("answering failed; dead-lettering the message")
                    await self._dead_letter(record, f"responder error: {exc!r}")
                    return

    async def _dead_letter(self, record: Record, reason: str) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                await dead_letter(
                    self._producer,
                    self._kafka,
                    record,
                    reason=reason,
                    consumer_group=self._group_id,
                )
            except KafkaError as exc:
                if attempt == self._max_attempts or not exc.retriable:
                    raise
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            else:
                metrics.DEAD_LETTERED.inc()
                return


def _summary(exc: ValidationError) -> str:
    """The validation errors in one line, without echoing the (possibly large) input."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in exc.errors(include_input=False)
    )
