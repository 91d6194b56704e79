"""The work of one assigned partition: answer its messages in order, track what finished.

Messages of *different* sessions (Kafka keys) of a partition are answered at the same
time, while the messages of one session wait for each other (the process-wide limit,
RESPONDER_MAX_CONCURRENCY, is applied by the handler). `max_in_flight=1` answers a
partition strictly in offset order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeAlias

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from tidings.common.kafka import stop_task
from tidings.common.logging import get_logger
from tidings.responder import metrics
from tidings.responder.offsets import OffsetTracker

log = get_logger(__name__)

# How long a cancelled answer gets to end before it is abandoned.
STOP_TIMEOUT_S = 5.0

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Handler: TypeAlias = Callable[[Record], Coroutine[Any, Any, None]]


class PartitionWorker:
    """Runs `handler` for each record of one partition in background tasks."""

    def __init__(
        self,
        tp: TopicPartition,
        handler: Handler,
        *,
        max_in_flight: int | None = 1,
        on_crash: Callable[[BaseException], None] | None = None,
        on_finish: Callable[[], None] | None = None,
    ) -> None:
        self.tp = tp
        self.tracker = OffsetTracker()
        self._handler = handler
        self._max_in_flight = max_in_flight
        self._on_crash = on_crash
        # Called when an answer finished, so its offset can be committed at once.
        self._on_finish = on_finish
        self._waiting: deque[Record] = deque()
        self._running: dict[int, tuple[asyncio.Task[None], bytes]] = {}
        self._closed = False
        self._next_offset: int | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def next_offset(self) -> int | None:
        """The offset after the last record handed to this worker (where fetching goes on)."""
        return self._next_offset

    @property
    def backlog(self) -> int:
        """Messages waiting or being answered."""
        return len(self._waiting) + len(self._running)

    @property
    def closed(self) -> bool:
        return self._closed

    def _handed(self, record: Record) -> bool:
        """True for a record this worker already holds (fetched again after a rebalance
        handed the partition back: the consumer seeks past them, a stale batch may not)."""
        return self._next_offset is not None and record.offset < self._next_offset

    def add(self, records: Iterable[Record]) -> None:
        """Queue fetched records (in offset order) and start what may start."""
        if self._closed:
            return
        for record in records:
            if self._handed(record):
                continue
            self.tracker.add(record.offset)
            self._waiting.append(record)
            self._next_offset = record.offset + 1
        self._schedule()

    def add_finished(self, record: Record) -> None:
        """Track a record that needs no answer (a cancel request), so commits pass over it."""
        if self._closed or self._handed(record):
            return
        self.tracker.add(record.offset)
        self.tracker.finish(record.offset)
        self._next_offset = record.offset + 1

    def expedite(self, matches: Callable[[Record], bool]) -> bool:
        """Start the first waiting record that `matches` now, out of turn.

        Used for a cancelled message: its answer is only a `cancelled` event, which need
        not wait for the session's earlier messages.
        """
        if self._closed:
            return False
        for record in self._waiting:
            if matches(record):
                self._waiting.remove(record)
                self._start(record, record.key or b"")
                return True
        return False

    def _schedule(self) -> None:
        if self._closed:
            return
        # A key is blocked while one of its messages runs or waits ahead, so each session's
        # messages are answered in order; the first waiting message of a free key may start.
        blocked = {key for _, key in self._running.values()}
        for record in list(self._waiting):
            key = record.key or b""
            if key in blocked:
                continue
            blocked.add(key)
            if self._max_in_flight is not None and len(self._running) >= self._max_in_flight:
                break
            self._waiting.remove(record)
            self._start(record, key)
        if self._running or self._waiting:
            self._idle.clear()
        else:
            self._idle.set()

    def _start(self, record: Record, key: bytes) -> None:
        task = asyncio.create_task(
            self._handler(record), name=f"answer-{record.topic}-{record.partition}-{record.offset}"
        )
        self._running[record.offset] = (task, key)
        task.add_done_callback(lambda done: self._done(record, done))

    def _done(self, record: Record, task: asyncio.Task[None]) -> None:
        self._running.pop(record.offset, None)
        if task.cancelled():
            # Abandoned: left uncommitted so the message is redelivered.
            metrics.ABANDONED.inc()
            log.warning("answer abandoned", partition=record.partition, offset=record.offset)
        elif (error := task.exception()) is not None:
            log.error(
                "answering crashed; the partition stops here",
                partition=record.partition,
                offset=record.offset,
                error=repr(error),
            )
            self._closed = True
            self._waiting.clear()
            if self._on_crash is not None:
                self._on_crash(error)
        else:
            self.tracker.finish(record.offset)
            if self._on_finish is not None:
                self._on_finish()
        self._schedule()
        if self._closed and not self._running:
            self._idle.set()

    async def stop(self, grace_s: float) -> None:
        """Drop waiting records, let running answers finish for `grace_s`, cancel the rest."""
        self._closed = True
        dropped = len(self._waiting)
        self._waiting.clear()
        running = [task for task, _ in self._running.values()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_s)
            # Cancelled, and waited for within a bound: an answer that ignores its
            # cancellation is left behind (logged) rather than holding up the shutdown.
            await asyncio.gather(
                *(stop_task(task, name="answer", timeout_s=STOP_TIMEOUT_S) for task in pending)
            )
        self._idle.set()
        if dropped or running:
            log.info(
                "partition stopped",
                topic=self.tp.topic,
                partition=self.tp.partition,
                dropped=dropped,
                running=len(running),
            )

    async def wait_idle(self) -> None:
        """Return once nothing waits or runs."""
        await self._idle.wait()
