"""What happens to one `user_messages` record: parse, answer, or dead-letter.

A message waits for one of the process's answer slots (RESPONDER_MAX_CONCURRENCY) before
it is answered; a cancel while it waits ends it at once as `cancelled`.

Returning normally means the record is finished and may be committed. Raising means the
responder cannot go on (the broker stays unreachable); the record stays uncommitted and is
redelivered after a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from tidings.common.events import CancelRequest, UserMessage, parse_inbound_event
from tidings.common.kafka import dead_letter, is_transient
from tidings.common.logging import bind, get_logger
from tidings.common.settings import KafkaSettings
from tidings.common.tracing import (
    InvalidHeaderError,
    child_traceparent,
    trace_id_of,
    traceparent_from_headers,
)
from tidings.responder import metrics
from tidings.responder.cancels import CancelRegistry
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
        max_concurrency: int = 8,
        cancels: CancelRegistry | None = None,
        max_age_s: float = 0.0,
    ) -> None:
        self.cancels = cancels or CancelRegistry()
        self._max_age = timedelta(seconds=max_age_s) if max_age_s > 0 else None
        self._slots = asyncio.Semaphore(max_concurrency)
        self._draining = asyncio.Event()
        self._router = router
        self._producer = producer
        self._kafka = kafka
        self._group_id = group_id
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s

    async def __call__(self, record: Record) -> None:
        try:
            parent = traceparent_from_headers(list(record.headers or ()))
        except InvalidHeaderError as exc:
            await self._dead_letter(record, str(exc))
            return
        try:
            event = parse_inbound_event(record.value or b"")
        except ValidationError as exc:
            await self._dead_letter(record, f"invalid user_messages event: {_summary(exc)}")
            return
        if isinstance(event, CancelRequest):
            # Normally taken on arrival by the fetch loop; harmless when it gets here.
            self.cancels.cancel(event.message_id, (event.session_id, event.user))
            return
        if self._max_age is not None and datetime.now(UTC) - event.ts > self._max_age:
            metrics.EXPIRED.inc()
            log.info("message too old, dropped unanswered", message_id=event.message_id)
            return
        with bind(
            session_id=event.session_id,
            message_id=event.message_id,
            trace_id=trace_id_of(parent),
        ):
            cancel = self.cancels.begin(event.message_id, (event.session_id, event.user))
            try:
                if not await self._slot_or_cancel(cancel):
                    await self._publish(
                        event, parent, lambda emit: self._router.cancelled(event, emit)
                    )
                    return
                metrics.IN_FLIGHT.inc()
                try:
                    await self._publish(
                        event,
                        parent,
                        lambda emit: self._router.answer(event, emit, cancel=cancel),
                        record=record,
                    )
                finally:
                    metrics.IN_FLIGHT.dec()
                    self._slots.release()
            finally:
                self.cancels.end(event.message_id)

    def drain(self) -> None:
        """Shutting down: messages still waiting for a slot are abandoned (redelivered later)."""
        self._draining.set()

    async def _slot_or_cancel(self, cancel: asyncio.Event) -> bool:
        """Wait for an answer slot; False (and no slot held) when cancelled first.

        Raises `CancelledError` (the message is abandoned, uncommitted) when the service
        starts shutting down before a slot is free: no new answer starts then.
        """
        if cancel.is_set():
            return False
        if self._draining.is_set():
            raise asyncio.CancelledError
        if not self._slots.locked():
            await self._slots.acquire()
            return True
        slot = asyncio.ensure_future(self._slots.acquire())
        stop = asyncio.ensure_future(cancel.wait())
        drain = asyncio.ensure_future(self._draining.wait())
        try:
            await asyncio.wait({slot, stop, drain}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Abandoned while waiting: a slot acquired in the meantime must not leak.
            if slot.done() and not slot.cancelled():
                self._slots.release()
            raise
        finally:
            stop.cancel()
            drain.cancel()
            if not slot.done():
                slot.cancel()
        acquired = slot.done() and not slot.cancelled()
        if cancel.is_set() or self._draining.is_set():
            if acquired:
                self._slots.release()
            if cancel.is_set():
                return False
            raise asyncio.CancelledError
        return acquired

    async def _publish(
        self,
        message: UserMessage,
        parent: str | None,
        answer: Callable[[KafkaEmitter], Awaitable[object]],
        *,
        record: Record | None = None,
    ) -> None:
        """Run `answer` with a fresh emitter, retrying when publishing fails."""
        for attempt in range(1, self._max_attempts + 1):
            emit = KafkaEmitter(
                self._producer,
                self._kafka.model_responses_topic,
                key=message.session_id,
                traceparent=child_traceparent(parent),
            )
            try:
                await answer(emit)
                return
            except EmitError as exc:
                if attempt == self._max_attempts:
                    raise
                log.warning("publishing the answer failed; retrying", error=str(exc))
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            except Exception as exc:
                if record is None:
                    raise
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
                if attempt == self._max_attempts or not is_transient(exc):
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
