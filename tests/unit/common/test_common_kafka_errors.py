"""Which broker errors a worker retries instead of exiting."""

from __future__ import annotations

from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    UnknownError,
)

from tidings.common.kafka import is_transient


def test_errors_of_a_restarting_broker_are_retried() -> None:
    # UNKNOWN_SERVER_ERROR is what Tansu answers produce requests with right after a restart.
    assert is_transient(UnknownError())
    assert is_transient(KafkaTimeoutError())
    assert is_transient(NotLeaderForPartitionError())


def test_errors_that_cannot_pass_by_themselves_are_not() -> None:
    assert not is_transient(MessageSizeTooLargeError())
