"""A failing backend hands over to the next one; a backend that keeps failing is skipped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import pytest

from tidings.common.settings import LLMSettings
from tidings.responder.llm import (
    LLM_UNAVAILABLE,
    BackendChain,
    Finished,
    LLMError,
    LLMEvent,
    LLMRequest,
    TextChunk,
)
from tidings.responder.llm.breaker import CircuitBreaker, CircuitState
from tidings.responder.llm.echo import EchoBackend


class Scripted:
    """A backend that fails (before or after text), hangs, or answers, as told."""

    def __init__(self, name: str, mode: str = "ok") -> None:
        self.name = name
        self.model = f"{name}-model"
        self.mode = mode
        self.calls = 0
        self.closed = 0

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        self.calls += 1
        try:
            if self.mode == "refuse":
                raise LLMError(LLM_UNAVAILABLE, "connection refused")
            if self.mode == "hang":
                await asyncio.sleep(3600)
            if self.mode == "bug":
                raise RuntimeError("bug in backend")
            yield TextChunk(f"from {self.name}")
            if self.mode == "die":
                raise LLMError("llm_failed", "died mid-stream")
            yield Finished(model=self.model)
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        pass


async def collect(chain: BackendChain) -> list[LLMEvent]:
    return [event async for event in chain.stream(LLMRequest(text="q"))]


@pytest.mark.parametrize("mode", ["refuse", "hang", "bug"])
async def test_a_failure_before_the_first_token_goes_to_the_second_backend(mode: str) -> None:
    first, second = Scripted("first", mode), Scripted("second")
    events = await collect(BackendChain([first, second], timeout_s=0.2))
    assert events[0] == TextChunk("from second")
    assert isinstance(events[-1], Finished) and events[-1].backend == "second"
    assert first.closed == 1


async def test_a_failure_after_text_is_final() -> None:
    first, second = Scripted("first", "die"), Scripted("second")
    chain = BackendChain([first, second], timeout_s=1)
    seen: list[LLMEvent] = []
    with pytest.raises(LLMError, match="died mid-stream"):
        async for event in chain.stream(LLMRequest(text="q")):
            seen.append(event)
    assert seen == [TextChunk("from first")]
    assert second.calls == 0


async def test_all_backends_failing_is_one_unavailable_error() -> None:
    chain = BackendChain([Scripted("a", "refuse"), Scripted("b", "refuse")], timeout_s=1)
    with pytest.raises(LLMError) as info:
        await collect(chain)
    assert info.value.code == LLM_UNAVAILABLE
    assert "a: " in str(info.value) and "b: " in str(info.value)


async def test_an_open_circuit_skips_the_backend_until_a_probe_succeeds() -> None:
    first, second = Scripted("first", "refuse"), Scripted("second")
    chain = BackendChain([first, second], timeout_s=1, breaker_failures=2, breaker_reset_s=0.2)
    for _ in range(2):
        await collect(chain)
    assert chain.breakers[0].state is CircuitState.OPEN
    for _ in range(3):
        await collect(chain)
    assert first.calls == 2  # skipped while open
    await asyncio.sleep(0.25)
    first.mode = "ok"
    events = await collect(chain)  # the half-open probe goes through and succeeds
    assert isinstance(events[-1], Finished) and events[-1].backend == "first"
    assert chain.breakers[0].state is CircuitState.CLOSED


def test_breaker_states() -> None:
    now = [0.0]
    breaker = CircuitBreaker("x", failures=2, reset_s=10, clock=lambda: now[0])
    assert breaker.allow()
    breaker.failure()
    assert breaker.state is CircuitState.CLOSED
    breaker.failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    now[0] = 10.0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure()
    assert breaker.state is CircuitState.OPEN
    now[0] = 20.0
    assert breaker.allow()
    breaker.release()  # a cancelled probe lets the next one through
    assert breaker.allow()
    breaker.success()
    assert breaker.state is CircuitState.CLOSED


async def test_echo_paces_its_tokens_and_derives_them_from_the_question() -> None:
    echo = EchoBackend(LLMSettings(), first_token_s=0.1, tokens_per_s=50, tokens=6)
    started = time.monotonic()
    times: list[float] = []
    texts: list[str] = []
    async for event in echo.stream(LLMRequest(text="ping pong")):
        times.append(time.monotonic() - started)
        if isinstance(event, TextChunk):
            texts.append(event.text)
    assert "".join(texts) == "You said: ping pong ping pong"
    assert times[0] >= 0.1
    assert times[-1] >= 0.1 + 5 / 50


def test_breaker_state_is_one_labelled_series_per_state() -> None:
    from prometheus_client import REGISTRY

    def exported() -> dict[str, float | None]:
        return {
            state.name.lower(): REGISTRY.get_sample_value(
                "tidings_responder_llm_circuit_state",
                {"backend": "gauge-test", "state": state.name.lower()},
            )
            for state in CircuitState
        }

    breaker = CircuitBreaker("gauge-test", failures=1, reset_s=60)
    assert exported() == {"closed": 1, "open": 0, "half_open": 0}
    breaker.failure()
    assert exported() == {"closed": 0, "open": 1, "half_open": 0}
