"""How far a partition may be committed when its messages finish out of order.

Kafka stores one committed position per partition: everything below it counts as done.
Committing past a message that is still being answered would lose it if this worker dies,
so the position only moves over a contiguous run of finished messages, starting from the
lowest one not yet committed (at-least-once, nothing skipped).
"""

from __future__ import annotations

from collections import deque


class OffsetTracker:
    """Fetched and finished offsets of one partition, and the position that is safe to commit."""

    def __init__(self) -> None:
        self._fetched: deque[int] = deque()
        self._finished: set[int] = set()
        self._position: int | None = None
        self._committed: int | None = None

    def add(self, offset: int) -> None:
        """Record a fetched message; offsets must arrive in increasing order."""
        if self._fetched:
            last: int | None = self._fetched[-1]
        else:
            last = None if self._position is None else self._position - 1
        if last is not None and offset <= last:
            raise ValueError(f"offset {offset} arrived after offset {last}")
        self._fetched.append(offset)

    def finish(self, offset: int) -> None:
        """Mark a fetched message done (answered, or dead-lettered)."""
        if offset not in self._fetched:
            raise KeyError(f"offset {offset} is not awaiting completion")
        self._finished.add(offset)
        while self._fetched and self._fetched[0] in self._finished:
            done = self._fetched.popleft()
            self._finished.discard(done)
            self._position = done + 1

    @property
    def position(self) -> int | None:
        """The offset to commit (one past the last contiguous finished message), if any."""
        return self._position

    def to_commit(self) -> int | None:
        """`position` when it moved past the last committed one, else None."""
        if self._position is None or self._position == self._committed:
            return None
        return self._position

    def committed(self, position: int) -> None:
        """Note that `position` was committed."""
        if self._committed is None or position > self._committed:
            self._committed = position

    @property
    def unfinished(self) -> int:
        """Fetched messages not finished yet or waiting behind an unfinished one."""
        return len(self._fetched)
