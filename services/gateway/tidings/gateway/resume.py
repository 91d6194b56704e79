"""Where a reconnecting client's stream picks up (`Last-Event-ID`).

SSE ids are `partition-offset-timestamp` (the Kafka position and the record's timestamp),
identical on every replica, and a session lives on one partition, so "the events after id
X" is well defined anywhere. The timestamp matters when a broker without durable storage
(Tansu in memory mode) restarted and numbers its records from 0 again: the same position
then names two events, one from before the restart and one from after, and only the
timestamp tells which one the client saw. Ids without it (`P-O`, from older gateways) are
matched by position alone.

- X is in this replica's buffer: replay what follows it (the events up to X are fed to the
  client's answer state silently, so attempt tracking stays right).
- X is beyond what this replica has read (it is a little behind the replica the client came
  from): hold the events until the one at X's position arrives. If it is X, drop what was
  held and stream live; if it is another event (or none comes within AHEAD_WAIT_S), the
  position is not the client's after all: `reset`, then the whole answer.
- Otherwise (evicted, unknown, from before a broker restart this replica never saw, not one
  of our ids, or a `P-O` id naming two buffered events): the stream is stale; the client gets
  `reset` and then the whole answer (from the buffer, from history, or live).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from tidings.gateway.hub import Mark
from tidings.gateway.replay import EventId, StreamEvent, parse_event_id

# How far ahead of this replica's read position an id may be and still be waited for; ids
# further ahead cannot come from a replica reading the same log.
MAX_LEAD = 100_000

# How long a stream holds events while waiting for the event its id names (replicas are
# normally well under a second apart; after a broker outage they recover within seconds).
AHEAD_WAIT_S = 5.0

# An id whose timestamp is older than the last record this replica read on that partition by
# more than this cannot be ahead of it: it comes from a log this replica no longer reads.
# (Record timestamps are set by the producers, whose clocks may differ a little.)
CLOCK_SKEW_MS = 1_000


class Awaited(Enum):
    """What a live event means to a stream waiting for the event its id names."""

    HOLD = "hold"  # before the position: held until the wait is decided
    FOUND = "found"  # the very event: the client has everything up to here
    MISSED = "missed"  # another event at or past the position: the id is not from this log


@dataclass(slots=True)
class ResumePlan:
    """`prime`: fed silently; `replay`: sent; `awaiting`: see `check` (`held` waits for it)."""

    prime: list[StreamEvent] = field(default_factory=list)
    replay: list[StreamEvent] = field(default_factory=list)
    stale: bool = False
    awaiting: EventId | None = None
    held: list[StreamEvent] = field(default_factory=list)

    def check(self, item: StreamEvent) -> Awaited:
        """Where a live event stands while `awaiting` is set (other partitions: held too)."""
        awaited = self.awaiting
        if awaited is None or item.partition != awaited.partition:
            return Awaited.HOLD
        if item.is_at(awaited):
            return Awaited.FOUND
        if item.offset < awaited.offset:
            return Awaited.HOLD
        return Awaited.MISSED

    def settle(self) -> list[StreamEvent]:
        """Stop waiting; the held events, oldest first."""
        held, self.held, self.awaiting = self.held, [], None
        return held


def plan_resume(
    snapshot: list[StreamEvent],
    last_event_id: str | None,
    mark: Callable[[int], Mark | None],
) -> ResumePlan:
    """How to continue a stream whose client last saw `last_event_id` (None: a new stream).

    `snapshot` is the session's buffer and `mark` the hub's last position per partition,
    both taken when the client subscribed.
    """
    if not last_event_id:
        return ResumePlan(replay=snapshot)
    position = parse_event_id(last_event_id)
    if position is None:
        return ResumePlan(replay=snapshot, stale=True)
    index = _find(snapshot, position)
    if index is not None:
        return ResumePlan(prime=snapshot[: index + 1], replay=snapshot[index + 1 :])
    if _ahead(position, mark(position.partition)):
        # Everything this replica holds comes before the id; whether the client saw it is
        # decided when the event at the id's position arrives.
        return ResumePlan(awaiting=position, held=list(snapshot))
    return ResumePlan(replay=snapshot, stale=True)


def _find(snapshot: list[StreamEvent], position: EventId) -> int | None:
    """Index of the event `position` names; None if absent or, for `P-O`, ambiguous."""
    matches = [i for i, item in enumerate(snapshot) if item.is_at(position)]
    if not matches:
        return None
    if position.timestamp is None and len({snapshot[i].timestamp for i in matches}) > 1:
        return None  # two logs' events at that position: which one the client saw is unknown
    return matches[0]


def _ahead(position: EventId, mark: Mark | None) -> bool:
    """True when the id may name an event this replica has not read yet."""
    if mark is None or not mark.offset < position.offset <= mark.offset + MAX_LEAD:
        return False
    if position.timestamp is not None and mark.timestamp is not None:
        return position.timestamp >= mark.timestamp - CLOCK_SKEW_MS
    return True
