"""Answer text reaches clients in few, timely deltas instead of one event per token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tidings.responder.coalesce import DeltaCoalescer, coalesce


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_text_waits_until_enough_characters() -> None:
    clock = FakeClock()
    buffer = DeltaCoalescer(window_s=0.04, max_chars=10, clock=clock)
    assert buffer.push("Hello") is None
    assert buffer.push(", wo") is None
    assert buffer.push("rld") == "Hello, world"
    assert buffer.take() is None


def test_the_first_text_can_go_at_once_and_the_rest_is_grouped() -> None:
    buffer = DeltaCoalescer(window_s=0.04, max_chars=10, clock=FakeClock(), first_now=True)
    assert buffer.push("Hel") == "Hel"
    assert buffer.push("lo, ") is None
    assert buffer.push("world!") == "lo, world!"


def test_text_is_due_once_the_window_passes() -> None:
    clock = FakeClock()
    buffer = DeltaCoalescer(window_s=0.04, max_chars=100, clock=clock)
    assert buffer.time_left() is None
    buffer.push("Hi")
    clock.now += 0.01
    assert buffer.time_left() == pytest.approx(0.03)
    assert buffer.due() is None
    clock.now += 0.03
    assert buffer.time_left() == 0
    assert buffer.due() == "Hi"
    assert buffer.time_left() is None


def test_the_window_counts_from_the_oldest_waiting_text() -> None:
    clock = FakeClock()
    buffer = DeltaCoalescer(window_s=0.04, max_chars=100, clock=clock)
    buffer.push("a")
    clock.now += 0.05
    # A chunk arriving after the window flushes everything at once.
    assert buffer.push("b") == "ab"


def test_empty_chunks_are_ignored() -> None:
    buffer = DeltaCoalescer(window_s=0.04, max_chars=1, clock=FakeClock())
    assert buffer.push("") is None
    assert buffer.time_left() is None


async def _fast(chunks: list[str]) -> AsyncIterator[str]:
    for chunk in chunks:
        yield chunk


async def test_fast_tokens_are_grouped_by_size() -> None:
    tokens = list("abcdefghij")
    buffer = DeltaCoalescer(window_s=10, max_chars=4)
    out = [chunk async for chunk in coalesce(_fast(tokens), buffer)]
    assert out == ["abcd", "efgh", "ij"]


async def test_a_quiet_model_still_gets_its_text_flushed_on_time() -> None:
    release = asyncio.Event()

    async def slow() -> AsyncIterator[str]:
        yield "first"
        await release.wait()
        yield "second"

    buffer = DeltaCoalescer(window_s=0.02, max_chars=100)
    out: list[str] = []
    # Without the timer this would wait forever: "second" only comes after "first" is out.
    async with asyncio.timeout(2):
        async for chunk in coalesce(slow(), buffer):
            out.append(chunk)
            release.set()
    assert out == ["first", "second"]


async def test_a_hanging_model_times_out_and_is_closed() -> None:
    closed = asyncio.Event()

    async def hanging() -> AsyncIterator[str]:
        try:
            yield "partial"
            await asyncio.sleep(3600)
            yield "never"
        finally:
            closed.set()

    buffer = DeltaCoalescer(window_s=10, max_chars=100)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async for _ in coalesce(hanging(), buffer, timeout_s=0.1):
            pass
    assert time.monotonic() - started < 2
    assert closed.is_set()


async def test_a_failing_model_raises_and_unpublished_text_is_dropped() -> None:
    async def failing() -> AsyncIterator[str]:
        yield "half an ans"
        raise ConnectionError("model server went away")

    buffer = DeltaCoalescer(window_s=10, max_chars=100)
    out: list[str] = []
    with pytest.raises(ConnectionError):
        async for chunk in coalesce(failing(), buffer):
            out.append(chunk)
    assert out == []


async def test_the_first_text_goes_out_without_waiting_for_other_tasks() -> None:
    # On a busy event loop every hop through another task waits for all the ready ones;
    # the first text is what time to first token measures, so it takes no such hop.
    turns = 0
    stop = asyncio.Event()

    async def busy() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    async def model() -> AsyncIterator[str]:
        yield "Hello"
        await asyncio.sleep(0.01)
        yield " there"

    other = asyncio.create_task(busy())
    await asyncio.sleep(0)
    chunks = coalesce(model(), DeltaCoalescer(window_s=0.04, max_chars=48, first_now=True))
    before = turns
    assert await anext(chunks) == "Hello"
    assert turns == before
    assert [chunk async for chunk in chunks] == [" there"]
    stop.set()
    await other


async def test_a_model_that_says_nothing_before_the_deadline_times_out() -> None:
    async def silent() -> AsyncIterator[str]:
        await asyncio.sleep(3600)
        yield "never"

    with pytest.raises(TimeoutError):
        async for _ in coalesce(silent(), DeltaCoalescer(window_s=10, max_chars=1), timeout_s=0.05):
            pass
