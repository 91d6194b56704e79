"""Fan-out of answer events to the SSE clients of a session.

`FanoutHub.subscribe` takes the replay snapshot and registers the subscriber in one
synchronous step, and `FanoutHub.dispatch` is synchronous too: on one event loop nothing can
run in between, so a subscriber sees every event exactly once — first from the snapshot,
then live — with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
from collections import deque

from tidings.common.logging import get_logger
from tidings.gateway.replay import ReplayBuffer, StreamEvent

log = get_logger(__name__)


class Subscription:
    """One client's view of a session: the snapshot at subscribe time, then live events."""

    def __init__(
        self, hub: FanoutHub, session_id: str, snapshot: list[StreamEvent], max_pending: int
    ) -> None:
        self.session_id = session_id
        self.snapshot = snapshot
        self.overflowed = False
        self._hub = hub
        self._max_pending = max_pending
        self._pending: deque[StreamEvent] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def deliver(self, item: StreamEvent) -> None:
        """Queue a live event; a client too far behind is cut off rather than buffered forever."""
        if self._closed:
            return
        if len(self._pending) >= self._max_pending:
            self.overflowed = True
            log.warning("stream fell behind, closing it", session_id=self.session_id)
            self.close()
            return
        self._pending.append(item)
        self._wakeup.set()

    async def next_batch(self) -> list[StreamEvent]:
        """The live events queued since the last call; waits for one; [] once closed."""
        while not self._pending and not self._closed:
            self._wakeup.clear()
            await self._wakeup.wait()
        batch = list(self._pending)
        self._pending.clear()
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

    def __init__(self, buffer: ReplayBuffer, *, max_pending: int) -> None:
        self._buffer = buffer
        self._max_pending = max_pending
        self._subscribers: dict[str, set[Subscription]] = {}
        self._closed = False
        # Last offset handed out per partition: SSE ids at or below it have been seen here.
        self._high_water: dict[int, int] = {}

    def high_water(self, partition: int) -> int | None:
        """The last offset of `partition` read by this replica (None: partition unknown)."""
        return self._high_water.get(partition)

    def reading_from(self, partition: int, offset: int) -> None:
        """The reader (re)starts `partition` at `offset` (lower after a broker lost its log)."""
        self._high_water[partition] = offset - 1

    def dispatch(self, item: StreamEvent) -> int:
        """Buffer `item` and hand it to the session's subscribers; returns how many got it.

        An event at or below the partition's high-water mark was already handled (a reader
        restarted after an outage re-reads a little): it is ignored and -1 is returned.
        """
        known = self._high_water.get(item.partition)
        if known is not None and item.offset <= known:
            return -1
        self._high_water[item.partition] = item.offset
        self._buffer.append(item)
        subscribers = self._subscribers.get(item.session_id)
        if not subscribers:
            return 0
        delivered = 0
        for subscription in list(subscribers):
            subscription.deliver(item)
            delivered += not subscription.closed
        return delivered

    def subscribe(self, session_id: str) -> Subscription:
        """Snapshot and register atomically (no await); a closed hub gives a closed one."""
        subscription = Subscription(self, session_id, self.snapshot(session_id), self._max_pending)
        if self._closed:
            subscription.close()
        else:
            self._subscribers.setdefault(session_id, set()).add(subscription)
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
