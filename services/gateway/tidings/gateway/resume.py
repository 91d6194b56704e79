"""Where a reconnecting client's stream picks up (`Last-Event-ID`).

SSE ids are Kafka positions `partition-offset`, identical on every replica, and a session
lives on one partition, so "the events after id X" is well defined anywhere:

- X is in this replica's buffer: replay what follows it (the events up to X are fed to the
  client's answer state silently, so attempt tracking stays right).
- X is beyond what this replica has read (it is a little behind the replica the client came
  from): stream live, dropping events at or before X.
- Otherwise (evicted, unknown, from before a restart, or not one of our ids): the stream is
  stale; the client gets `reset` and then the whole answer (from the buffer, from history, or
  live).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tidings.gateway.replay import StreamEvent, parse_event_id

# How far ahead of this replica's read position an id may be and still be waited for; ids
# further ahead cannot come from a replica reading the same log.
MAX_LEAD = 100_000


@dataclass(slots=True)
class ResumePlan:
    """`prime`: fed silently; `replay`: sent; live events at or before `skip_through` dropped."""

    prime: list[StreamEvent] = field(default_factory=list)
    replay: list[StreamEvent] = field(default_factory=list)
    skip_through: tuple[int, int] | None = None
    stale: bool = False

    def skips(self, item: StreamEvent) -> bool:
        """True for a live event the client already has."""
        if self.skip_through is None:
            return False
        partition, offset = self.skip_through
        return item.partition == partition and item.offset <= offset


def plan_resume(
    snapshot: list[StreamEvent],
    last_event_id: str | None,
    high_water: Callable[[int], int | None],
) -> ResumePlan:
    """How to continue a stream whose client last saw `last_event_id` (None: a new stream)."""
    if not last_event_id:
        return ResumePlan(replay=snapshot)
    position = parse_event_id(last_event_id)
    if position is None:
        return ResumePlan(replay=snapshot, stale=True)
    partition, offset = position
    for index, item in enumerate(snapshot):
        if (item.partition, item.offset) == position:
            return ResumePlan(prime=snapshot[: index + 1], replay=snapshot[index + 1 :])
    read = high_water(partition)
    if read is not None and read < offset <= read + MAX_LEAD:
        seen = [i for i in snapshot if i.partition == partition and i.offset <= offset]
        rest = [i for i in snapshot if not (i.partition == partition and i.offset <= offset)]
        return ResumePlan(prime=seen, replay=rest, skip_through=position)
    return ResumePlan(replay=snapshot, stale=True)
