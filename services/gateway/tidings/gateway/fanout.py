"""The gateway's one consumer of `model_responses`: every partition, no group, from the end.

Every replica reads every answer event, so an SSE client can be connected to any replica.
There is no consumer group (nothing to commit: the replay buffer is rebuilt from the live
stream after a restart) and no rebalancing; partitions are assigned by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from tidings.common.events import parse_response_event
from tidings.common.kafka import topic_partitions_of
from tidings.common.logging import get_logger
from tidings.common.settings import KafkaSettings
from tidings.gateway.hub import FanoutHub
from tidings.gateway.metrics import EVENTS_FANNED_OUT, INVALID_EVENTS
from tidings.gateway.replay import StreamEvent

log = get_logger(__name__)

_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


def to_stream_event(record: ConsumerRecord[bytes, bytes], *, now: float) -> StreamEvent | None:
    """The answer event in `record`, or None (logged and counted) if it is not one."""
    try:
        event = parse_response_event(record.value or b"")
    except ValidationError as exc:
        INVALID_EVENTS.inc()
        log.warning(
            "invalid answer event skipped",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            error=str(exc)[:300],
        )
        return None
    return StreamEvent(record.partition, record.offset, event, now)


class ResponseFanout:
    """Reads answer events into the hub. `async with` starts it positioned at the end."""

    def __init__(
        self, settings: KafkaSettings, hub: FanoutHub, *, start_timeout_s: float = 30.0
    ) -> None:
        self._settings = settings
        self._topic = settings.model_responses_topic
        self._hub = hub
        self._start_timeout_s = start_timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partitions: list[TopicPartition] = []

    @property
    def ready(self) -> bool:
        """True while every partition is assigned and the read loop is running."""
        return bool(self._partitions) and self._task is not None and not self._task.done()

    async def __aenter__(self) -> ResponseFanout:
        consumer = AIOKafkaConsumer(
            group_id=None,
            client_id=f"{self._settings.client_id}-gateway-fanout",
            enable_auto_commit=False,
            auto_offset_reset="latest",
            **self._settings.client_kwargs(),
        )
        await consumer.start()
        self._consumer = consumer
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await self._assign_from_end(consumer)
        except BaseException:
            await _stop(consumer)
            self._consumer = None
            raise
        self._task = asyncio.create_task(self._run(consumer), name="gateway-fanout")
        self._task.add_done_callback(_log_task_end)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await _stop(self._consumer)
            self._consumer = None
        self._partitions = []

    async def _assign_from_end(self, consumer: AIOKafkaConsumer) -> None:
        # Assigning partition 0 (every topic has it) makes the client track the topic's
        # metadata; once it arrives, all partitions are known and assigned.
        consumer.assign([TopicPartition(self._topic, 0)])
        while True:
            partitions = topic_partitions_of(consumer, [self._topic])
            if partitions:
                break
            await asyncio.sleep(0.05)
        consumer.assign(partitions)
        while not await consumer.seek_to_end(*partitions):
            log.warning("end offsets not known yet, retrying", topic=self._topic)
        positions = {tp.partition: await consumer.position(tp) for tp in partitions}
        self._partitions = partitions
        log.info("answer fan-out started", topic=self._topic, positions=positions)

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        failures = 0
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            except KafkaError as exc:
                delay = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
                failures += 1
                log.warning("fetching answer events failed", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    try:
                        self._handle(record, now)
                    except Exception:
                        # One bad record must not stop every stream on this replica.
                        INVALID_EVENTS.inc()
                        log.exception(
                            "answer event could not be fanned out",
                            partition=record.partition,
                            offset=record.offset,
                        )

    def _handle(self, record: ConsumerRecord[bytes, bytes], now: float) -> None:
        item = to_stream_event(record, now=now)
        if item is None:
            return
        self._hub.dispatch(item)
        EVENTS_FANNED_OUT.labels(item.event.schema_).inc()


async def _stop(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # aiokafka re-raises the cancellation of its own fetch request when it is stopped
        # while that request is backing off (broker unreachable); the consumer is closed.
        log.warning("answer fan-out consumer stopped while the broker was unreachable")


def _log_task_end(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("answer fan-out stopped", exc_info=exc)
