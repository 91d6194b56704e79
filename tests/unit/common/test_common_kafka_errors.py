"""Which broker errors a worker retries instead of exiting."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    UnknownError,
)

from tidings.common import kafka
from tidings.common.kafka import ensure_topics, is_transient
from tidings.common.settings import KafkaSettings


def test_errors_of_a_restarting_broker_are_retried() -> None:
    # UNKNOWN_SERVER_ERROR is what Tansu answers produce requests with right after a restart.
    assert is_transient(UnknownError())
    assert is_transient(KafkaTimeoutError())
    assert is_transient(NotLeaderForPartitionError())


def test_errors_that_cannot_pass_by_themselves_are_not() -> None:
    assert not is_transient(MessageSizeTooLargeError())


class _SlowThenReadyAdmin:
    """An admin client whose first CreateTopics runs out of time, as on a loaded machine."""

    calls = 0

    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def create_topics(self, topics: list[Any]) -> Any:
        type(self).calls += 1
        if type(self).calls == 1:
            raise TimeoutError  # what aiokafka raises when connecting takes too long
        return SimpleNamespace(topic_errors=[(topic.name, 0, None) for topic in topics])


async def test_a_request_that_runs_out_of_time_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", _SlowThenReadyAdmin)

    await ensure_topics(KafkaSettings(), attempts=3, delay_s=0)

    assert _SlowThenReadyAdmin.calls == 2
