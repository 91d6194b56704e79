"""Fan-out of answer events to the SSE clients of a session.

`FanoutHub.subscribe` takes the replay snapshot and registers the subscriber in one
synchronous step, and `FanoutHub.dispatch` is synchronous too: on one event loop nothing can
run in between, so a subscriber sees every event exactly once — first from the snapshot,
then live — with no gap and no duplicate.

The hub also keeps, per partition, the position and record timestamp of the last event it
handed out (the mark). A record at or below the mark is either the same record read again
(ignored) or proof that the broker's log is not the one read so far: a broker without
durable storage (Tansu in memory mode) restarted and numbers its records from 0 again. The
fan-out then reads that partition again from the new log's start.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tidings.common.logging import get_logger
from tidings.gateway.replay import ReplayBuffer, StreamEvent

log = get_logger(__name__)

DUPLICATE = -1
"""`dispatch`: the record was handled already (read again after the reader restarted)."""
LOG_RESTARTED = -2
"""`dispatch`: the record contradicts the mark - the partition's log started over."""


@dataclass(frozen=True, slots=True)
class Mark:
    """The last position of a partition handed out, and its record's timestamp if known."""

    offset: int
    timestamp: int | None = None

    def classify(self, item: StreamEvent) -> int:
        """0 for a record after the mark, else `DUPLICATE` or `LOG_RESTARTED`."""
        if item.offset > self.offset:
            return 0
        if item.offset == self.offset and (
            self.timestamp is None or item.timestamp is None or item.timestamp == self.timestamp
        ):
            return DUPLICATE
        # The reader never goes back below the mark by itself (it continues after it, or at
        # it to check it), so an earlier position, or another record at the mark, means the
        # log was replaced.
        return LOG_RESTARTED


class Subscription:
    """One client's view of a session: the snapshot at subscribe time, then live events."""

    def __init__(
        self,
        hub: FanoutHub,
        session_id: str,
        snapshot: list[StreamEvent],
        max_pending: int,
        marks: dict[int, Mark] | None = None,
        max_pending_bytes: int = 1 << 60,
    ) -> None:
        self.session_id = session_id
        self.snapshot = snapshot
        self._marks = dict(marks or {})
        self.overflowed = False
        self._hub = hub
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._pending_bytes = 0
        self._pending: deque[StreamEvent] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def mark(self, partition: int) -> Mark | None:
        """The hub's mark of `partition` when the snapshot was taken (None: not read)."""
        return self._marks.get(partition)

    def deliver(self, item: StreamEvent) -> None:
        """Queue a live event; a client too far behind is cut off rather than buffered forever."""
        if self._closed:
            return
        if (
            len(self._pending) >= self._max_pending
            or self._pending_bytes + item.size > self._max_pending_bytes
        ):
            self.overflowed = True
            log.warning("stream fell behind, closing it")
            self.close()
            return
        self._pending.append(item)
        self._pending_bytes += item.size
        self._wakeup.set()

    async def next_batch(self) -> list[StreamEvent]:
        """The live events queued since the last call; waits for one; [] once closed."""
        while not self._pending and not self._closed:
            self._wakeup.clear()
            await self._wakeup.wait()
        batch = list(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        return batch

    def close(self) -> None:
        """Stop receiving events (idempotent); a waiting `next_batch` returns what is left."""
        if self._closed:
            return
        self._closed = True
        self._hub.unsubscribe(self)
        self._wakeup.set()


class FanoutHub:
    """The replay buffer plus the live subscribers of every session on this replica."""

    def __init__(
        self,
        buffer: ReplayBuffer,
        *,
        max_pending: int,
        max_pending_bytes: int = 1 << 60,
        on_activity: Callable[[], None] = lambda: None,
    ) -> None:
        self._buffer = buffer
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        # Called when a stream opens and when an event reaches one: a client waits for
        # answers here, so the fan-out fetches with the busy wait (tidings.common.pacing).
        self._on_activity = on_activity
        self._subscribers: dict[str, set[Subscription]] = {}
        self._closed = False
        # Last position handed out per partition: SSE ids at or below it have been seen here.
        self._marks: dict[int, Mark] = {}

    def high_water(self, partition: int) -> int | None:
        """The last offset of `partition` read by this replica (None: partition unknown)."""
        mark = self._marks.get(partition)
        return None if mark is None else mark.offset

    def mark(self, partition: int) -> Mark | None:
        """The last position of `partition` handed out, with its record's timestamp."""
        return self._marks.get(partition)

    def reading_from(self, partition: int, offset: int) -> None:
        """The reader (re)starts `partition` at `offset` (lower after a broker lost its log)."""
        self._marks[partition] = Mark(offset - 1)

    def dispatch(self, item: StreamEvent) -> int:
        """Buffer `item` and hand it to the session's subscribers; returns how many got it.

        A record at or below the partition's mark is not handed out: `DUPLICATE` when it is
        the marked record again, `LOG_RESTARTED` when the log changed under the reader (which
        must then read the partition again, see `Mark.classify`).
        """
        mark = self._marks.get(item.partition)
        if mark is not None:
            verdict = mark.classify(item)
            if verdict < 0:
                return verdict
        self._marks[item.partition] = Mark(item.offset, item.timestamp)
        self._buffer.append(item)
        subscribers = self._subscribers.get(item.session_id)
        if not subscribers:
            return 0
        delivered = 0
        for subscription in list(subscribers):
            subscription.deliver(item)
            delivered += not subscription.closed
        if delivered:
            self._on_activity()
        return delivered

    def subscribe(self, session_id: str) -> Subscription:
        """Snapshot and register atomically (no await); a closed hub gives a closed one."""
        subscription = Subscription(
            self,
            session_id,
            self.snapshot(session_id),
            self._max_pending,
            self._marks,
            self._max_pending_bytes,
        )
        if self._closed:
            subscription.close()
        else:
            self._subscribers.setdefault(session_id, set()).add(subscription)
            self._on_activity()
        return subscription

    def snapshot(self, session_id: str) -> list[StreamEvent]:
        """The session's buffered events, oldest first (what a new subscriber would replay)."""
        return self._buffer.snapshot(session_id)

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscriber (called by `Subscription.close`)."""
        subscribers = self._subscribers.get(subscription.session_id)
        if subscribers is None:
            return
        subscribers.discard(subscription)
        if not subscribers:
            del self._subscribers[subscription.session_id]

    def subscriber_count(self, session_id: str | None = None) -> int:
        """Open subscriptions of one session, or of all sessions."""
        if session_id is not None:
            return len(self._subscribers.get(session_id, ()))
        return sum(len(subscribers) for subscribers in self._subscribers.values())

    def close(self) -> None:
        """End every stream (shutdown): subscribers drain what they have, then stop."""
        self._closed = True
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                subscription.close()
