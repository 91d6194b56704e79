"""Bounded retries with exponential backoff for the worker's writes (Qdrant, Kafka)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from tidings.common.kafka import is_transient
from tidings.common.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")
_MAX_BACKOFF_S = 10.0


def is_retriable(exc: BaseException) -> bool:
    """True for failures that may pass on their own: timeouts, lost connections, overload."""
    if isinstance(exc, KafkaError):
        return is_transient(exc)
    if isinstance(exc, ResponseHandlingException):
        return True  # the Qdrant server could not be reached or did not answer in time
    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code or 0
        return status == 429 or status >= 500
    return isinstance(exc, TimeoutError | ConnectionError)


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int,
    backoff_s: float,
) -> T:
    """Run `operation`, retrying retriable failures up to `attempts` tries in all.

    Anything else, or the last retriable failure, is raised: the caller must not commit
    the records the operation was for.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except Exception as exc:
            if attempt >= attempts or not is_retriable(exc):
                raise
            delay = min(backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
            log.warning(
                "retrying", what=what, attempt=attempt, delay_s=delay, error=repr(exc)[:300]
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: attempts >= 1")
