"""The per-session replay buffer: recent answer events for clients that connect late.

Bounded three ways so a busy replica cannot run out of memory: events per session, number
of sessions (the least recently active session goes first) and age.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from tidings.common.events import ResponseDelta, ResponseDone, ResponseError, ResponseStart

AnswerEvent = ResponseStart | ResponseDelta | ResponseDone | ResponseError


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """An answer event with the Kafka position it was read from."""

    partition: int
    offset: int
    event: AnswerEvent
    received_at: float

    @property
    def id(self) -> str:
        """SSE event id; derived from the Kafka position, so every replica uses the same one."""
        return f"{self.partition}-{self.offset}"

    @property
    def session_id(self) -> str:
        return self.event.session_id


class ReplayBuffer:
    """Recent events per session, in the order they were read (which is Kafka order)."""

    def __init__(
        self,
        *,
        max_events_per_session: int,
        max_sessions: int,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_events = max_events_per_session
        self._max_sessions = max_sessions
        self._max_age_s = max_age_s
        self._clock = clock
        # Ordered by last append, oldest first: eviction by count and by age both start at
        # the front.
        self._sessions: OrderedDict[str, deque[StreamEvent]] = OrderedDict()

    def __len__(self) -> int:
        """Number of sessions held."""
        return len(self._sessions)

    def append(self, item: StreamEvent) -> None:
        """Keep `item` for its session, evicting whatever falls outside the bounds."""
        events = self._sessions.get(item.session_id)
        if events is None:
            events = self._sessions[item.session_id] = deque(maxlen=self._max_events)
        else:
            self._sessions.move_to_end(item.session_id)
        events.append(item)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        self._expire(item.session_id)

    def snapshot(self, session_id: str) -> list[StreamEvent]:
        """The session's events still within the age bound, oldest first."""
        self._expire(session_id)
        return list(self._sessions.get(session_id, ()))

    def _expire(self, session_id: str) -> None:
        cutoff = self._clock() - self._max_age_s
        # Whole sessions go from the front (least recently active first), so each call only
        # touches what it evicts; old events inside a live session are trimmed when that
        # session is used, which is enough because its length is bounded anyway.
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest[-1].received_at >= cutoff:
                break
            self._sessions.popitem(last=False)
        events = self._sessions.get(session_id)
        while events and events[0].received_at < cutoff:
            events.popleft()
