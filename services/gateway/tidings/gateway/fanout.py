"""The gateway's one consumer: every partition of `model_responses` (and, with JWT auth, of
`user_messages`), no consumer group, partitions assigned by hand.

Every replica reads every answer event, so an SSE client can be connected to any replica.
There is nothing to commit: a replica that starts reads each partition of `model_responses`
back from max(beginning, end - GATEWAY_BACKFILL_MAX_RECORDS, the first record younger than
GATEWAY_REPLAY_MAX_AGE_S) - found with ListOffsets by timestamp, which Tansu answers - so an
answer that began before the replica started can still be served and resumed there. The
`user_messages` partitions are read back from end - GATEWAY_BACKFILL_MAX_RECORDS x 20 to
learn who owns which session.

A broker without durable storage (Tansu in memory mode) that restarts numbers each partition
from 0 again. After an outage the reader therefore continues *at* the last record it handed
out and checks that the record there is still the same one (position and record timestamp);
when it is not, or when the log no longer reaches that far, or when a record turns up below
that position while reading, the partition is read again from the new log's start (see
`FanoutHub.dispatch`).

The reader is paced (`tidings.common.pacing`): it fetches with the short busy wait while
clients wait for answers on this replica (the hub touches the pacer), and with the idle wait
otherwise and while it trails the log by more than BACKLOG_RECORDS records on some partition.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from tidings.common.events import UserMessage, parse_inbound_event, parse_response_event
from tidings.common.kafka import stop_client, stop_task, topic_partitions_of
from tidings.common.logging import get_logger
from tidings.common.pacing import FetchPacer
from tidings.common.settings import KafkaSettings
from tidings.gateway.hub import DUPLICATE, LOG_RESTARTED, FanoutHub, Mark
from tidings.gateway.metrics import EVENTS_FANNED_OUT, INVALID_EVENTS
from tidings.gateway.owners import OwnershipMap
from tidings.gateway.replay import StreamEvent

log = get_logger(__name__)

_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)

# How far (records) a partition may trail its high watermark and still count as caught up: a
# few fetches' worth at full load. Further behind - a replica reading answers back after its
# start, or one that fell behind - the fan-out fetches with the idle wait until it has caught
# up (see tidings.common.pacing).
BACKLOG_RECORDS = 200


def behind(
    positions: dict[TopicPartition, int],
    highs: dict[TopicPartition, int | None],
    limit: int = BACKLOG_RECORDS,
) -> bool:
    """True when some partition's next offset trails its high watermark by more than `limit`.

    A partition with no high watermark known yet is not counted behind.
    """
    return any(
        high is not None and high - positions.get(tp, high) > limit for tp, high in highs.items()
    )


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
    return StreamEvent(
        record.partition,
        record.offset,
        event,
        now,
        len(record.value or b""),
        record_timestamp(record),
    )


def record_timestamp(record: ConsumerRecord[bytes, bytes]) -> int | None:
    """The record's timestamp in ms, or None when the broker did not store one."""
    timestamp = record.timestamp
    return timestamp if isinstance(timestamp, int) and timestamp >= 0 else None


def continue_at(mark: Mark | None, begin: int, end: int) -> int | None:
    """Where a reader that handed out up to `mark` continues in the log [begin, end).

    At the marked record itself when its timestamp is known (the first record read then
    tells whether the log is still the one read so far), after it otherwise; None when the
    log no longer reaches that far (or never did): start afresh. (`end` may be low on Tansu,
    which reports the last batch's first offset + 1; starting afresh is then merely early.)
    """
    if mark is None:
        return None
    if mark.timestamp is not None and begin <= mark.offset < end:
        return mark.offset
    if mark.timestamp is None and begin <= mark.offset + 1 <= end:
        return mark.offset + 1
    return None


def learn_owner(record: ConsumerRecord[bytes, bytes], owners: OwnershipMap) -> None:
    """Record the sender of a user message as its session's owner (cancels own nothing)."""
    try:
        event = parse_inbound_event(record.value or b"")
    except ValidationError:
        return  # the responder dead-letters it; it names no owner worth trusting
    if isinstance(event, UserMessage):
        owners.record(event.session_id, event.user)


class ResponseFanout:
    """Reads answer events into the hub (and owners into the map). Use `async with`."""

    def __init__(
        self,
        settings: KafkaSettings,
        hub: FanoutHub,
        *,
        owners: OwnershipMap | None = None,
        backfill_records: int = 0,
        backfill_age_s: float = 600.0,
        pacer: FetchPacer | None = None,
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self._settings = settings
        self._topic = settings.model_responses_topic
        self._owners_topic = settings.user_messages_topic
        self._hub = hub
        self._owners = owners
        self._backfill_records = backfill_records
        self._backfill_age_s = backfill_age_s
        # Short fetch waits while clients wait for answers on this replica (the hub touches
        # it when a stream opens or an event reaches one), the idle wait after.
        self._pacer = pacer or FetchPacer.from_settings(settings, name="gateway-fanout")
        self._start_timeout_s = start_timeout_s
        # Stopping the read task, and then the consumer, each take at most this long; what does
        # not end by then is abandoned (logged), so a replica always shuts down.
        self._stop_timeout_s = stop_timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partitions: list[TopicPartition] = []
        # Answer partitions continued at their mark after an outage: the first record read
        # must be the marked one, else the log started over.
        self._checking: dict[int, Mark] = {}
        # Where each partition is read next, and its end when the reader started (until the
        # broker reports a high watermark): how far behind the log the reader is.
        self._positions: dict[TopicPartition, int] = {}
        self._start_ends: dict[TopicPartition, int] = {}

    @property
    def ready(self) -> bool:
        """True while every partition is assigned and the read loop is running."""
        return bool(self._partitions) and self._task is not None and not self._task.done()

    async def __aenter__(self) -> ResponseFanout:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop_all()

    async def restart(self) -> None:
        """Start over with a new consumer (after a broker outage), continuing where it was."""
        await self._stop_all()
        await self._start()

    async def _start(self) -> None:
        consumer = AIOKafkaConsumer(
            group_id=None,
            client_id=f"{self._settings.client_id}-gateway-fanout",
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=self._pacer.idle_ms,
            **self._settings.client_kwargs(),
        )
        await consumer.start()
        self._consumer = consumer
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await self._assign(consumer)
        except BaseException:
            await self._stop_consumer(consumer)
            self._consumer = None
            raise
        self._pacer.attach(consumer)
        self._task = asyncio.create_task(self._run(consumer), name="gateway-fanout")
        self._task.add_done_callback(_log_task_end)

    async def _stop_all(self) -> None:
        if self._task is not None:
            await stop_task(self._task, name="gateway-fanout", timeout_s=self._stop_timeout_s)
            self._task = None
        if self._consumer is not None:
            await self._stop_consumer(self._consumer)
            self._consumer = None
        self._partitions = []
        self._checking = {}
        self._positions = {}
        self._start_ends = {}

    async def _stop_consumer(self, consumer: AIOKafkaConsumer) -> None:
        await stop_client(consumer, name="gateway-fanout", timeout_s=self._stop_timeout_s)

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        topics = [self._topic] + ([self._owners_topic] if self._owners is not None else [])
        # Assigning partition 0 (every topic has it) makes the client track the topics'
        # metadata; once it arrives, all partitions are known and assigned.
        consumer.assign([TopicPartition(topic, 0) for topic in topics])
        while True:
            partitions = topic_partitions_of(consumer, topics)
            if {tp.topic for tp in partitions} == set(topics):
                break
            await asyncio.sleep(0.05)
        consumer.assign(partitions)
        answers = [tp for tp in partitions if tp.topic == self._topic]
        owners = [tp for tp in partitions if tp.topic != self._topic]
        starts = await self._answer_starts(consumer, answers)
        if owners:
            begin = await consumer.beginning_offsets(owners)
            end = await consumer.end_offsets(owners)
            self._start_ends.update(end)
            for tp in owners:
                starts[tp] = max(begin[tp], end[tp] - 20 * self._backfill_records)
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        self._positions = dict(starts)
        self._partitions = partitions
        self._pacer.backlog(self._behind(consumer))
        log.info(
            "answer fan-out started",
            topic=self._topic,
            positions={tp.partition: starts[tp] for tp in answers},
        )

    async def _answer_starts(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Where to read each answer partition from (see the module docstring).

        After an outage the reader continues at the last record the hub handled (to check it
        is still there), unless the broker's log no longer reaches it (a broker without
        durable storage restarted); then it starts afresh, as a new replica would.
        """
        begins, ends, starts = await self._fresh_starts(consumer, partitions)
        self._start_ends.update(ends)
        self._checking = {}
        for tp in partitions:
            mark = self._hub.mark(tp.partition)
            position = continue_at(mark, begins[tp], ends[tp])
            if mark is None or position is None:
                self._hub.reading_from(tp.partition, starts[tp])
                continue
            starts[tp] = position
            if position == mark.offset:
                self._checking[tp.partition] = mark
        return starts

    async def _fresh_starts(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int], dict[TopicPartition, int]]:
        """Begin and end offsets, and where a replica that has read nothing yet starts."""
        begin = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        since_ms = int((time.time() - self._backfill_age_s) * 1000)
        by_time = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
        starts = {}
        for tp in partitions:
            found = by_time.get(tp)
            young = end[tp] if found is None or found.offset < 0 else min(found.offset, end[tp])
            starts[tp] = max(begin[tp], end[tp] - self._backfill_records, young)
        return begin, end, starts

    async def _read_again(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        """The partition's log started over under the reader: read the new one from its start."""
        mark = self._hub.mark(tp.partition)
        start = (await self._fresh_starts(consumer, [tp]))[2][tp]
        self._checking.pop(tp.partition, None)
        consumer.seek(tp, start)
        self._positions[tp] = start
        self._hub.reading_from(tp.partition, start)
        log.warning(
            "answer log started over (the broker lost its records), reading it again",
            topic=tp.topic,
            partition=tp.partition,
            was_at=None if mark is None else mark.offset,
            start=start,
        )

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
            restarted: list[TopicPartition] = []
            for tp, records in batches.items():
                if records:
                    self._positions[tp] = records[-1].offset + 1
                for record in records:
                    try:
                        verdict = self._handle(record, now)
                    except Exception:
                        # One bad record must not stop every stream on this replica.
                        INVALID_EVENTS.inc()
                        log.exception(
                            "answer event could not be fanned out",
                            partition=record.partition,
                            offset=record.offset,
                        )
                        continue
                    if verdict == LOG_RESTARTED:
                        # The rest of this batch is read again from the new start; should
                        # that fail, from this record on, which then tells again.
                        consumer.seek(tp, record.offset)
                        self._positions[tp] = record.offset
                        restarted.append(tp)
                        break
            for tp in restarted:
                try:
                    await self._read_again(consumer, tp)
                except KafkaError as exc:
                    log.warning("reading a restarted log again failed", error=str(exc))
            # The hub touches the pacer while clients wait for answers here; reading back a
            # backlog goes at the idle wait.
            self._pacer.backlog(self._behind(consumer))

    def _behind(self, consumer: AIOKafkaConsumer) -> bool:
        """Whether the reader trails the log: the high watermarks of the broker's last fetch
        answers, or, for a partition not fetched yet, its end when the reader started."""
        highs: dict[TopicPartition, int | None] = {}
        for tp in self._positions:
            high = consumer.highwater(tp)
            highs[tp] = self._start_ends.get(tp) if high is None else high
        return behind(self._positions, highs)

    def _handle(self, record: ConsumerRecord[bytes, bytes], now: float) -> int:
        """Hand the record on; `LOG_RESTARTED` when its partition must be read again."""
        if record.topic != self._topic:
            if self._owners is not None:
                learn_owner(record, self._owners)
            return 0
        checking = self._checking.get(record.partition)
        if checking is not None:
            # The first record after an outage must be the one the reader stopped at.
            if record.offset != checking.offset or record_timestamp(record) != checking.timestamp:
                return LOG_RESTARTED
            del self._checking[record.partition]
            return DUPLICATE
        item = to_stream_event(record, now=now)
        if item is None:
            return 0
        verdict = self._hub.dispatch(item)
        if verdict >= 0:
            EVENTS_FANNED_OUT.labels(item.event.schema_).inc()
        return verdict


def _log_task_end(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("answer fan-out stopped", exc_info=exc)
