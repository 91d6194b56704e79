"""A message is never committed (and so never skipped) before it has been answered."""

from __future__ import annotations

import pytest

from tidings.responder.offsets import OffsetTracker


def test_in_order_completion_commits_each_message() -> None:
    tracker = OffsetTracker()
    for offset in (0, 1, 2):
        tracker.add(offset)
    tracker.finish(0)
    assert tracker.to_commit() == 1
    tracker.finish(1)
    tracker.finish(2)
    assert tracker.to_commit() == 3
    assert tracker.unfinished == 0


def test_out_of_order_completion_commits_only_the_contiguous_prefix() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.add(offset)
    tracker.finish(12)
    tracker.finish(13)
    assert tracker.to_commit() is None  # 10 and 11 still running
    tracker.finish(10)
    assert tracker.to_commit() == 11  # 11 is still running: commit stops before it
    tracker.finish(11)
    assert tracker.to_commit() == 14
    assert tracker.unfinished == 0


def test_gaps_between_offsets_do_not_block_commits() -> None:
    # Compacted topics and transaction markers leave holes in the offsets.
    tracker = OffsetTracker()
    tracker.add(5)
    tracker.add(9)
    tracker.finish(9)
    tracker.finish(5)
    assert tracker.to_commit() == 10


def test_nothing_new_to_commit_after_a_commit() -> None:
    tracker = OffsetTracker()
    tracker.add(0)
    tracker.finish(0)
    tracker.committed(1)
    assert tracker.to_commit() is None
    tracker.add(1)
    assert tracker.to_commit() is None
    tracker.finish(1)
    assert tracker.to_commit() == 2


def test_an_abandoned_message_holds_back_the_commit() -> None:
    tracker = OffsetTracker()
    for offset in (0, 1, 2):
        tracker.add(offset)
    tracker.finish(0)
    tracker.finish(2)  # 1 was abandoned (shutdown): never finished
    assert tracker.position == 1
    assert tracker.unfinished == 2


def test_misuse_is_refused() -> None:
    tracker = OffsetTracker()
    tracker.add(3)
    with pytest.raises(ValueError):
        tracker.add(3)
    with pytest.raises(ValueError):
        tracker.add(2)
    with pytest.raises(KeyError):
        tracker.finish(7)
    tracker.finish(3)
    with pytest.raises(ValueError):
        tracker.add(3)
