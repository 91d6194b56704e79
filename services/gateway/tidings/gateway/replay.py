"""The per-session replay buffer: recent answer events for clients that connect late.

Bounded five ways so a busy replica cannot run out of memory: events and bytes per session,
bytes and number of sessions in all (the least recently active session goes first) and age.
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
    """An answer event with the Kafka position (and record timestamp) it was read from."""

    partition: int
    offset: int
    event: AnswerEvent
    received_at: float
    size: int = 0
    """Bytes of the Kafka value (counted against the per-session byte bound)."""
    timestamp: int | None = None
    """The Kafka record's timestamp (ms), stored with the record: every replica reads the same."""

    @property
    def id(self) -> str:
        """SSE event id `P-O-T`: position and record timestamp, the same on every replica.

        The timestamp tells two events apart that a broker which lost its log (Tansu in
        memory mode) put at the same position, before and after its restart.
        """
        if self.timestamp is None:
            return f"{self.partition}-{self.offset}"
        return f"{self.partition}-{self.offset}-{self.timestamp}"

    @property
    def session_id(self) -> str:
        return self.event.session_id

    def is_at(self, position: EventId) -> bool:
        """True when this is the event `position` names (a `P-O` id: same position only)."""
        if (self.partition, self.offset) != (position.partition, position.offset):
            return False
        return position.timestamp is None or position.timestamp == self.timestamp


@dataclass(frozen=True, slots=True)
class EventId:
    """A parsed SSE id: `P-O-T`, or `P-O` as issued before ids carried the timestamp."""

    partition: int
    offset: int
    timestamp: int | None = None


def parse_event_id(value: str) -> EventId | None:
    """The parts of an SSE id `P-O-T` or `P-O`, or None when it is not one of ours."""
    parts = value.strip().split("-")
    if len(parts) not in (2, 3) or not all(part.isascii() and part.isdigit() for part in parts):
        return None
    if len(parts[0]) > 6 or any(len(part) > 19 for part in parts[1:]):
        return None
    timestamp = int(parts[2]) if len(parts) == 3 else None
    return EventId(int(parts[0]), int(parts[1]), timestamp)


class _Session:
    __slots__ = ("bytes", "events")

    def __init__(self) -> None:
        self.events: deque[StreamEvent] = deque()
        self.bytes = 0

    def popleft(self) -> None:
        self.bytes -= self.events.popleft().size


class ReplayBuffer:
    """Recent events per session, in the order they were read (which is Kafka order)."""

    def __init__(
        self,
        *,
        max_events_per_session: int,
        max_sessions: int,
        max_age_s: float,
        max_bytes_per_session: int = 1 << 60,
        max_total_bytes: int = 1 << 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_events = max_events_per_session
        self._max_sessions = max_sessions
        self._max_age_s = max_age_s
        self._max_bytes = max_bytes_per_session
        self._max_total_bytes = max_total_bytes
        self._total_bytes = 0
        self._clock = clock
        # Ordered by last append, oldest first: eviction by count and by age both start at
        # the front.
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def __len__(self) -> int:
        """Number of sessions held."""
        return len(self._sessions)

    @property
    def total_bytes(self) -> int:
        """Bytes of every session's events together."""
        return self._total_bytes

    def _drop_oldest_session(self) -> None:
        _, dropped = self._sessions.popitem(last=False)
        self._total_bytes -= dropped.bytes

    def _trim(self, session: _Session) -> None:
        size = session.bytes
        session.popleft()
        self._total_bytes -= size - session.bytes

    def append(self, item: StreamEvent) -> None:
        """Keep `item` for its session, evicting whatever falls outside the bounds."""
        session = self._sessions.get(item.session_id)
        if session is None:
            session = self._sessions[item.session_id] = _Session()
        else:
            self._sessions.move_to_end(item.session_id)
        session.events.append(item)
        session.bytes += item.size
        self._total_bytes += item.size
        # The newest event always stays, even if it alone is over the byte bound.
        while len(session.events) > 1 and (
            len(session.events) > self._max_events or session.bytes > self._max_bytes
        ):
            self._trim(session)
        while len(self._sessions) > self._max_sessions or (
            self._total_bytes > self._max_total_bytes and len(self._sessions) > 1
        ):
            self._drop_oldest_session()
        self._expire(item.session_id)

    def snapshot(self, session_id: str) -> list[StreamEvent]:
        """The session's events still within the age bound, oldest first."""
        self._expire(session_id)
        session = self._sessions.get(session_id)
        return list(session.events) if session is not None else []

    def _expire(self, session_id: str) -> None:
        cutoff = self._clock() - self._max_age_s
        # Whole sessions go from the front (least recently active first), so each call only
        # touches what it evicts; old events inside a live session are trimmed when that
        # session is used, which is enough because its length is bounded anyway.
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.events[-1].received_at >= cutoff:
                break
            self._drop_oldest_session()
        session = self._sessions.get(session_id)
        while session is not None and session.events and session.events[0].received_at < cutoff:
            self._trim(session)
