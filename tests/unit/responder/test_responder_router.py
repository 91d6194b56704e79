"""The events a client receives for one message: start, deltas, exactly one terminal event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from datetime import timedelta
from typing import cast

import pytest

from tidings.common.events import (
    ResponseDelta,
    ResponseDone,
    ResponseError,
    ResponseEvent,
    ResponseStart,
    Usage,
    UserMessage,
    is_terminal,
    utcnow,
)
from tidings.common.memory_api import Context, Evidence, KnowledgeChunk
from tidings.responder.answers.engine import EngineConfig
from tidings.responder.faq import load_faq
from tidings.responder.llm import LLM_UNAVAILABLE, Finished, LLMError, LLMRequest, TextChunk
from tidings.responder.llm.base import LLMEvent
from tidings.responder.memory import ContextSource
from tidings.responder.router import EmitError, Router, RouterConfig, split_text

FALLBACK = "I'm not sure about that. Please contact support@bookstore.com for assistance."
RETURNS = "We accept returns within 30 days. Books must be in original condition."


class FakeBackend:
    """Streams the given chunks, then fails or finishes as told."""

    name = "fake"
    model = "fake-model"

    def __init__(
        self,
        chunks: Sequence[str] = (),
        *,
        fail_after: int | None = None,
        error: Exception | None = None,
        pause_s: float = 0.0,
        hang: bool = False,
    ) -> None:
        self.chunks = list(chunks)
        self.fail_after = fail_after
        self.error = error or LLMError(LLM_UNAVAILABLE, "connection refused")
        self.pause_s = pause_s
        self.hang = hang
        self.requests: list[LLMRequest] = []
        self.closed = False

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        self.requests.append(request)
        try:
            for index, chunk in enumerate(self.chunks):
                if self.fail_after is not None and index == self.fail_after:
                    raise self.error
                if self.pause_s:
                    await asyncio.sleep(self.pause_s)
                yield TextChunk(chunk)
            if self.fail_after is not None and self.fail_after >= len(self.chunks):
                raise self.error
            if self.hang:
                await asyncio.sleep(3600)
            yield Finished(model="served-model", usage=Usage(prompt_tokens=7, completion_tokens=5))
        finally:
            self.closed = True

    async def aclose(self) -> None:
        pass


class Sink:
    """Collects emitted events; can fail on a given event number."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.events: list[ResponseEvent] = []
        self.fail_at = fail_at

    async def __call__(self, event: ResponseEvent) -> None:
        if self.fail_at is not None and len(self.events) == self.fail_at:
            raise EmitError("broker unreachable")
        self.events.append(event)

    def deltas(self) -> list[ResponseDelta]:
        return [e for e in self.events if isinstance(e, ResponseDelta)]


def message(text: str) -> UserMessage:
    return UserMessage(
        message_id="m1", session_id="s1", text=text, ts=utcnow() - timedelta(seconds=1)
    )


def router(
    backend: FakeBackend,
    *,
    flush_chars: int = 16,
    flush_ms: float = 5,
    timeout_s: float = 5,
    flush_first: bool = True,
    start_grace_ms: float = 250,
) -> Router:
    return Router(
        load_faq(),
        backend,
        RouterConfig(
            fallback_text=FALLBACK,
            flush_ms=flush_ms,
            flush_chars=flush_chars,
            flush_first=flush_first,
            start_grace_ms=start_grace_ms,
            llm_timeout_s=timeout_s,
        ),
    )


def assert_well_formed(events: list[ResponseEvent]) -> None:
    """start first, deltas numbered 0.., one terminal event last, all of one attempt."""
    assert isinstance(events[0], ResponseStart)
    assert is_terminal(events[-1])
    assert sum(1 for e in events if is_terminal(e)) == 1
    assert [e.seq for e in events if isinstance(e, ResponseDelta)] == list(
        range(sum(1 for e in events if isinstance(e, ResponseDelta)))
    )
    assert len({e.attempt for e in events}) == 1
    assert {(e.message_id, e.session_id) for e in events} == {("m1", "s1")}


async def test_faq_question_streams_the_canned_answer() -> None:
    backend = FakeBackend(["should not be used"])
    sink = Sink()
    done = await router(backend).answer(message("What is your return policy?"), sink)
    assert_well_formed(sink.events)
    start = sink.events[0]
    assert isinstance(start, ResponseStart) and start.source == "faq"
    assert len(sink.deltas()) >= 2  # canned text streams in chunks, like any answer
    assert "".join(d.text for d in sink.deltas()) == RETURNS
    assert isinstance(done, ResponseDone)
    assert (done.source, done.text, done.model) == ("faq", RETURNS, None)
    assert done.timings.total_ms is not None and done.timings.queue_ms is not None
    assert done.timings.queue_ms >= 900  # the message waited ~1 s before work started
    assert backend.requests == []


async def test_open_question_streams_the_llm_answer() -> None:
    chunks = ["Paris ", "is the ", "capital ", "of France, ", "a country ", "in Europe."]
    backend = FakeBackend(chunks)
    sink = Sink()
    done = await router(backend, flush_chars=16).answer(
        message("What is the capital of France?"), sink
    )
    assert_well_formed(sink.events)
    assert isinstance(done, ResponseDone)
    assert done.source == "llm"
    assert done.text == "".join(chunks)
    assert "".join(d.text for d in sink.deltas()) == done.text
    assert 2 <= len(sink.deltas()) < len(chunks)  # coalesced, but still streamed
    assert done.model == "served-model"
    assert done.usage == Usage(prompt_tokens=7, completion_tokens=5)
    assert done.timings.first_token_ms is not None
    assert backend.requests[0].text == "What is the capital of France?"


class OneChunkMemory:
    """A memory service that knows one knowledge chunk (and embeds nothing)."""

    available = False

    def __init__(self, chunk: KnowledgeChunk) -> None:
        self.chunk = chunk

    async def context(self, session_id: str, query: str, **_: object) -> Context:
        return Context(session_id=session_id, knowledge=[self.chunk])


CRYPTO = "We do not accept cash on delivery, cheques, Discover cards or cryptocurrency."


async def test_a_generated_close_call_ends_with_the_way_to_ask_a_person() -> None:
    # "bitcoin" is not a word of the knowledge: the sentence clears the bar by little.
    chunk = KnowledgeChunk(
        chunk_id="c1",
        text=CRYPTO,
        title="Payments > Accepted payment methods",
        source="kb",
        score=0.45,
        sentences=[Evidence(text=CRYPTO, score=0.45)],
    )
    backend = FakeBackend(["We do not accept ", "cryptocurrency."])
    sink = Sink()
    config = RouterConfig(
        fallback_text=FALLBACK, flush_ms=5, flush_chars=16, engine=EngineConfig(mode="generate")
    )
    memory = cast(ContextSource, OneChunkMemory(chunk))
    done = await Router(load_faq(), backend, config, context=memory).answer(
        message("Can I pay with Bitcoin?"), sink
    )
    assert_well_formed(sink.events)
    assert isinstance(done, ResponseDone) and done.source == "knowledge", done
    hedge = "If this does not answer your question, please contact support@bookstore.com."
    assert done.text == f"We do not accept cryptocurrency.\n\n{hedge}"
    assert "".join(d.text for d in sink.deltas()) == done.text


async def test_llm_failing_before_its_first_token_gives_the_fallback() -> None:
    backend = FakeBackend(["never"], fail_after=0)
    sink = Sink()
    done = await router(backend).answer(message("Tell me a short story about a dragon"), sink)
    assert_well_formed(sink.events)
    assert isinstance(done, ResponseDone)
    assert (done.source, done.text) == ("fallback", FALLBACK)
    assert "".join(d.text for d in sink.deltas()) == FALLBACK


async def test_unpublished_llm_text_is_replaced_by_the_fallback() -> None:
    # The model produced text, but it was still being coalesced when the model failed:
    # the user has seen nothing, so the fallback can still answer cleanly.
    backend = FakeBackend(["Once upon"], fail_after=1)
    sink = Sink()
    done = await router(backend, flush_chars=1000, flush_ms=10_000, flush_first=False).answer(
        message("Tell me a story"), sink
    )
    assert_well_formed(sink.events)
    assert isinstance(done, ResponseDone) and done.source == "fallback"
    assert "Once upon" not in "".join(d.text for d in sink.deltas())


async def test_llm_failing_mid_stream_ends_with_an_error_not_a_partial_answer() -> None:
    backend = FakeBackend(["Once upon a time, ", "a dragon ", "lived"], fail_after=2)
    sink = Sink()
    terminal = await router(backend, flush_chars=8).answer(message("Tell me a story"), sink)
    assert_well_formed(sink.events)
    assert len(sink.deltas()) >= 1
    assert isinstance(terminal, ResponseError)
    assert terminal.code == "llm_failed"
    assert "support" not in terminal.message and "Traceback" not in terminal.message
    assert not any(isinstance(e, ResponseDone) for e in sink.events)


async def test_a_hanging_llm_is_cut_off_by_the_timeout_and_falls_back() -> None:
    backend = FakeBackend([], hang=True)
    sink = Sink()
    done = await router(backend, timeout_s=0.2).answer(message("Tell me a story"), sink)
    assert_well_formed(sink.events)
    assert isinstance(done, ResponseDone) and done.source == "fallback"
    assert backend.closed  # the request to the model server was released


async def test_an_empty_llm_answer_gives_the_fallback() -> None:
    sink = Sink()
    done = await router(FakeBackend([])).answer(message("Tell me a story"), sink)
    assert_well_formed(sink.events)
    assert isinstance(done, ResponseDone) and done.source == "fallback"


async def test_an_unexpected_failure_still_ends_the_stream_and_is_raised() -> None:
    backend = FakeBackend(["x"], fail_after=0, error=RuntimeError("bug"))
    sink = Sink()
    with pytest.raises(RuntimeError):
        await router(backend).answer(message("Tell me a story"), sink)
    assert_well_formed(sink.events)
    terminal = sink.events[-1]
    assert isinstance(terminal, ResponseError) and terminal.code == "internal_error"


async def test_a_publishing_failure_is_raised_for_the_caller_to_retry() -> None:
    sink = Sink(fail_at=1)
    with pytest.raises(EmitError):
        await router(FakeBackend(["a"])).answer(message("What is your return policy?"), sink)
    assert len(sink.events) == 1 and not any(is_terminal(e) for e in sink.events)


async def test_each_processing_is_a_new_attempt() -> None:
    first, second = Sink(), Sink()
    r = router(FakeBackend())
    await r.answer(message("hello"), first)
    await r.answer(message("hello"), second)
    assert first.events[0].attempt != second.events[0].attempt


class TimedSink(Sink):
    """A Sink that also notes when each event was published, and how many model requests
    had been made by then."""

    def __init__(self, backend: FakeBackend) -> None:
        super().__init__()
        self.backend = backend
        self.at: list[tuple[float, int]] = []

    async def __call__(self, event: ResponseEvent) -> None:
        await super().__call__(event)
        self.at.append((asyncio.get_running_loop().time(), len(self.backend.requests)))


async def test_a_model_answers_start_goes_out_with_its_first_text() -> None:
    backend = FakeBackend(["Once ", "upon a time."], pause_s=0.15)
    sink = TimedSink(backend)
    began = asyncio.get_running_loop().time()
    done = await router(backend, start_grace_ms=1000).answer(message("Tell me a story"), sink)
    assert_well_formed(sink.events)
    assert isinstance(done, ResponseDone) and done.source == "llm"
    start = sink.events[0]
    assert isinstance(start, ResponseStart) and start.model == "fake-model"
    # Not published while the model was working on its first text, but with it.
    assert sink.at[0][0] - began >= 0.14
    assert isinstance(sink.events[1], ResponseDelta) and sink.at[1][0] - sink.at[0][0] < 0.05


async def test_a_slow_models_start_goes_out_after_the_grace() -> None:
    backend = FakeBackend(["Once ", "upon a time."], pause_s=0.5)
    sink = TimedSink(backend)
    began = asyncio.get_running_loop().time()
    await router(backend, start_grace_ms=50).answer(message("Tell me a story"), sink)
    assert_well_formed(sink.events)
    assert sum(isinstance(e, ResponseStart) for e in sink.events) == 1
    assert 0.04 <= sink.at[0][0] - began < 0.4  # long before the first text
    assert sink.at[0][1] == 1  # the model had been asked already


async def test_with_no_grace_start_goes_out_before_the_model_is_asked() -> None:
    backend = FakeBackend(["Once ", "upon a time."])
    sink = TimedSink(backend)
    await router(backend, start_grace_ms=0).answer(message("Tell me a story"), sink)
    assert_well_formed(sink.events)
    assert sink.at[0][1] == 0


async def test_a_cancel_while_start_waits_ends_the_answer_with_one_start() -> None:
    backend = FakeBackend(["Once ", "upon a time."], pause_s=5)
    sink = Sink()
    cancel = asyncio.Event()
    answer = asyncio.create_task(
        router(backend, start_grace_ms=1000).answer(message("Tell me a story"), sink, cancel=cancel)
    )
    await asyncio.sleep(0.05)
    assert sink.events == []  # start is waiting for the first text
    cancel.set()
    terminal = await asyncio.wait_for(answer, 2)
    assert isinstance(terminal, ResponseError) and terminal.reason == "cancelled"
    assert_well_formed(sink.events)
    assert len(sink.events) == 2
    await asyncio.sleep(1.1)  # past the grace: the dropped start stays dropped
    assert len(sink.events) == 2


async def test_an_abandoned_answer_publishes_no_start_later() -> None:
    backend = FakeBackend(["Once ", "upon a time."], pause_s=5)
    sink = Sink()
    answer = asyncio.create_task(
        router(backend, start_grace_ms=100).answer(message("Tell me a story"), sink)
    )
    await asyncio.sleep(0.05)
    answer.cancel()  # shutdown or a rebalance: another replica answers it
    with pytest.raises(asyncio.CancelledError):
        await answer
    await asyncio.sleep(0.2)
    assert sink.events == []


async def test_a_start_that_fails_to_publish_fails_the_answer() -> None:
    sink = Sink(fail_at=0)
    with pytest.raises(EmitError):
        await router(FakeBackend(["x"], pause_s=0.2), start_grace_ms=20).answer(
            message("Tell me a story"), sink
        )
    assert sink.events == []


def test_split_text_cuts_between_words_and_loses_nothing() -> None:
    chunks = split_text(RETURNS, 20)
    assert "".join(chunks) == RETURNS
    assert all(len(chunk.rstrip()) <= 20 for chunk in chunks)
    assert all(not chunk.startswith(" ") for chunk in chunks)
