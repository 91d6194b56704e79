"""A partition whose answers fall behind stops fetching, so memory stays bounded."""

from __future__ import annotations

from aiokafka import TopicPartition

from tidings.responder.consumer import flow_changes

P0, P1, P2 = (TopicPartition("user_messages", i) for i in range(3))


def test_a_partition_reaching_the_backlog_limit_is_paused() -> None:
    assert flow_changes({P0: 64, P1: 10, P2: 63}, set(), 64) == ([P0], [])


def test_a_paused_partition_resumes_only_once_half_drained() -> None:
    # Still above half the limit: stays paused rather than flapping on every poll.
    assert flow_changes({P0: 40, P1: 10}, {P0}, 64) == ([], [])
    assert flow_changes({P0: 32, P1: 10}, {P0}, 64) == ([], [P0])


def test_nothing_changes_for_partitions_already_in_the_right_state() -> None:
    assert flow_changes({P0: 100, P1: 0}, {P0}, 64) == ([], [])
