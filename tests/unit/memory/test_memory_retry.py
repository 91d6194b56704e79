"""Which failures are retried, and that retries are bounded."""

from __future__ import annotations

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, UnknownTopicOrPartitionError
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from tidings.memory.retry import is_retriable, with_retries


def qdrant_status(code: int) -> UnexpectedResponse:
    return UnexpectedResponse(
        status_code=code, reason_phrase="", content=b"", headers=httpx.Headers()
    )


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (KafkaConnectionError(), True),
        (KafkaTimeoutError(), True),
        (UnknownTopicOrPartitionError(), True),
        (ResponseHandlingException(ConnectionError("refused")), True),
        (qdrant_status(503), True),
        (qdrant_status(429), True),
        (qdrant_status(400), False),
        (TimeoutError(), True),
        (ValueError("bad vector"), False),
    ],
)
def test_transient_failures_are_retriable_and_bugs_are_not(
    error: Exception, retriable: bool
) -> None:
    assert is_retriable(error) is retriable


async def test_a_transient_failure_is_retried_until_it_passes() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise KafkaConnectionError()
        return "stored"

    assert await with_retries(flaky, what="test", attempts=5, backoff_s=0.001) == "stored"
    assert calls == 3


async def test_retries_stop_after_the_bound() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ResponseHandlingException(ConnectionError("refused"))

    with pytest.raises(ResponseHandlingException):
        await with_retries(down, what="test", attempts=3, backoff_s=0.001)
    assert calls == 3


async def test_a_permanent_failure_is_raised_at_once() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("vector of the wrong size")

    with pytest.raises(ValueError, match="wrong size"):
        await with_retries(broken, what="test", attempts=5, backoff_s=0.001)
    assert calls == 1
