"""Gather small LLM chunks into fewer, larger deltas.

A model emits a token every few milliseconds; publishing each as its own Kafka event would
multiply broker and SSE traffic for no visible gain. Text waits until `flush_chars` are
buffered or the oldest buffered text is `flush_ms` old, whichever comes first. The very
first text of an answer can be sent at once (`first_now`): time to first token is what a
user feels, so it is not spent waiting for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

Clock = Callable[[], float]


class DeltaCoalescer:
    """The buffering rule, without any I/O, so it can be tested with a fake clock."""

    def __init__(
        self,
        *,
        window_s: float,
        max_chars: int,
        clock: Clock = time.monotonic,
        first_now: bool = False,
    ) -> None:
        self._first_now = first_now
        self._window_s = window_s
        self._max_chars = max_chars
        self._clock = clock
        self._parts: list[str] = []
        self._size = 0
        self._since = 0.0

    def push(self, text: str) -> str | None:
        """Buffer `text`; return the buffered text when it is big or old enough to publish."""
        if not text:
            return None
        if not self._parts:
            self._since = self._clock()
        self._parts.append(text)
        self._size += len(text)
        if self._first_now or self._size >= self._max_chars or self.time_left() == 0:
            self._first_now = False
            return self.take()
        return None

    def time_left(self) -> float | None:
        """Seconds until the buffered text is due; None when nothing is buffered."""
        if not self._parts:
            return None
        return max(0.0, self._since + self._window_s - self._clock())

    def due(self) -> str | None:
        """The buffered text if its window has passed, else None."""
        return self.take() if self.time_left() == 0 else None

    def take(self) -> str | None:
        """Everything buffered (None when empty), emptying the buffer."""
        if not self._parts:
            return None
        text = "".join(self._parts)
        self._parts.clear()
        self._size = 0
        return text


@dataclass(frozen=True)
class _Failure:
    error: Exception


class _End:
    pass


async def coalesce(
    source: AsyncIterator[str],
    coalescer: DeltaCoalescer,
    *,
    timeout_s: float | None = None,
    clock: Clock = time.monotonic,
) -> AsyncGenerator[str, None]:
    """Re-chunk `source` by `coalescer`'s rule, flushing on time even while `source` is quiet.

    Raises what `source` raises, and `TimeoutError` when `source` has not ended within
    `timeout_s`. Text still buffered when `source` fails is dropped: it was never published.
    """
    queue: asyncio.Queue[str | _Failure | _End] = asyncio.Queue()
    deadline = None if timeout_s is None else clock() + timeout_s
    task: asyncio.Task[None] | None = None
    try:
        # The first text is read here, not through the pump: nothing is buffered yet, so
        # there is no flush to wake up for, and the first token (time to first token is
        # what a user feels) does not wait for the pump task's turn on a busy event loop.
        # Only the deadline can interrupt this read, and then the answer is over anyway.
        try:
            async with asyncio.timeout(_left(deadline, clock)):
                first = await anext(source, _End())
        except TimeoutError:
            raise TimeoutError(f"no complete answer within {timeout_s}s") from None
        if isinstance(first, _End):
            return
        chunk = coalescer.push(first)
        if chunk:
            yield chunk

        async def pump() -> None:
            # Reading in its own task lets the reader wake on a timer while `source` is
            # waiting; cancelling an async generator's __anext__ directly would finalise it.
            try:
                async for text in source:
                    queue.put_nowait(text)
            except Exception as exc:  # noqa: BLE001 - handed to the reader, which raises it
                queue.put_nowait(_Failure(exc))
            else:
                queue.put_nowait(_End())

        task = asyncio.create_task(pump(), name="coalesce-pump")
        while True:
            waits = [w for w in (coalescer.time_left(), _left(deadline, clock)) if w is not None]
            try:
                # `asyncio.timeout`, not `wait_for`: no task of its own for every item.
                async with asyncio.timeout(min(waits) if waits else None):
                    item = await queue.get()
            except TimeoutError:
                if deadline is not None and clock() >= deadline:
                    raise TimeoutError(f"no complete answer within {timeout_s}s") from None
                chunk = coalescer.due()
                if chunk:
                    yield chunk
                continue
            if isinstance(item, _Failure):
                raise item.error
            if isinstance(item, _End):
                rest = coalescer.take()
                if rest:
                    yield rest
                return
            chunk = coalescer.push(item)
            if chunk:
                yield chunk
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def _left(deadline: float | None, clock: Clock) -> float | None:
    return None if deadline is None else max(0.0, deadline - clock())
