"""Routing order (tools -> FAQ -> LLM with context -> fallback) and cancelling an answer."""

from __future__ import annotations

import asyncio

import httpx

from tidings.common.events import (
    HistoryTurn,
    ResponseDelta,
    ResponseDone,
    ResponseError,
    ResponseStart,
    UserMessage,
)
from tidings.common.memory_api import (
    Context,
    Evidence,
    KnowledgeChunk,
    MemoryApiSettings,
    MemoryClient,
)
from tidings.common.settings import LLMSettings
from tidings.common.store_api import StoreClient
from tidings.responder.answers.engine import AnswerMode, EngineConfig, unsure_line
from tidings.responder.faq import load_faq
from tidings.responder.llm import BackendChain, LLMRequest
from tidings.responder.llm.echo import EchoBackend
from tidings.responder.memory import ContextSource
from tidings.responder.prompt import PromptLimits
from tidings.responder.router import Router, RouterConfig
from tidings.responder.tools import OrderStatusTool

FALLBACK = "Ask a human."


class Sink:
    def __init__(self) -> None:
        self.events: list[object] = []
        self.first_delta = asyncio.Event()

    async def __call__(self, event: object) -> None:
        self.events.append(event)
        if isinstance(event, ResponseDelta):
            self.first_delta.set()


class Recording(EchoBackend):
    def __init__(self, **kwargs: float) -> None:
        super().__init__(LLMSettings(), **kwargs)  # type: ignore[arg-type]
        self.requests: list[LLMRequest] = []

    async def stream(self, request: LLMRequest):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        async for event in super().stream(request):
            yield event


def memory_with_evidence(
    sentence: str, *, query_vector: list[float] | None = None
) -> httpx.MockTransport:
    """A memory service whose /context returns one gift-card chunk scored sentence by
    sentence (and whose /embed is down)."""
    context = Context(
        session_id="s1",
        knowledge=[
            KnowledgeChunk(
                chunk_id="a",
                text=sentence,
                title="Payments > Gift cards",
                url="https://kb/gift",
                source="kb",
                score=0.8,
                sentences=[Evidence(text=sentence, score=0.82)],
            ),
        ],
        query_vector=query_vector,
    )
    return httpx.MockTransport(
        lambda r: (
            httpx.Response(200, content=context.model_dump_json())
            if r.url.path == "/context"
            else httpx.Response(503)
        )
    )


def make_router(
    backend: Recording,
    *,
    orders: httpx.MockTransport | None = None,
    memory: httpx.MockTransport | None = None,
    mode: AnswerMode = "quote",
) -> Router:
    tools = []
    if orders is not None:
        tools = [OrderStatusTool(StoreClient("http://store.test", transport=orders))]
    context = None
    if memory is not None:
        context = ContextSource(
            MemoryClient(MemoryApiSettings(url="http://memory.test"), transport=memory)
        )
    return Router(
        load_faq(),
        BackendChain([backend], timeout_s=5),
        RouterConfig(
            fallback_text=FALLBACK,
            flush_ms=5,
            flush_chars=16,
            engine=EngineConfig(mode=mode, general_prompt="SYS", limits=PromptLimits(2000)),
        ),
        tools=tools,
        context=context,
    )


def msg(text: str, message_id: str = "m1") -> UserMessage:
    return UserMessage(message_id=message_id, session_id="s1", text=text)


ORDERS = httpx.MockTransport(
    lambda r: httpx.Response(
        200,
        json={
            "number": "123456",
            "status": "shipped",
            "placed_at": "2026-11-20T10:00:00Z",
            "updated_at": "2026-11-21T10:00:00Z",
            "carrier": None,
            "tracking_number": None,
            "estimated_delivery": None,
            "items": [],
        },
    )
)


async def test_an_order_number_is_answered_by_the_tool_before_the_faq() -> None:
    backend = Recording()
    sink = Sink()
    router = make_router(backend, orders=ORDERS)
    done = await router.answer(msg("Where is my order #123456? me@example.com"), sink)
    assert isinstance(done, ResponseDone)
    assert (done.source, done.tool, done.text) == (
        "tool",
        "order_status",
        "Order #123456 has shipped.",
    )
    start = sink.events[0]
    assert isinstance(start, ResponseStart) and (start.source, start.tool) == (
        "tool",
        "order_status",
    )
    assert backend.requests == []


async def test_without_a_number_the_tool_asks_for_it_and_without_store_numbers_go_on() -> None:
    backend = Recording()
    done = await make_router(backend, orders=ORDERS).answer(msg("where is my order?"), Sink())
    assert isinstance(done, ResponseDone) and (done.source, done.tool) == ("tool", "order_status")
    assert "order number" in done.text
    # Without the tool the FAQ asks for the number.
    done = await make_router(backend).answer(msg("where is my order?"), Sink())
    assert isinstance(done, ResponseDone) and done.source == "faq"
    # Tool disabled (ORDERS_API_URL unset): asking for the number it was given would be
    # wrong, and nothing can look it up: an honest unknown with the fallback contact.
    done = await make_router(backend).answer(msg("Where is my order #123456?"), Sink())
    assert isinstance(done, ResponseDone)
    assert (done.source, done.reason) == ("fallback", "unanswered")


async def test_a_knowledge_answer_quotes_its_evidence_and_cites_it_without_the_llm() -> None:
    memory = memory_with_evidence(
        "Gift cards come in amounts from $10 to $200 and never expire.", query_vector=[0.1, 0.2]
    )
    backend = Recording()
    done = await make_router(backend, memory=memory).answer(msg("Do gift cards expire?"), Sink())
    assert isinstance(done, ResponseDone) and done.source == "knowledge"
    assert done.text.startswith("Gift cards come in amounts from $10 to $200 and never expire.")
    assert [(s.title, s.url, s.score) for s in done.sources] == [
        ("Payments > Gift cards", "https://kb/gift", 0.8)
    ]
    assert backend.requests == []


async def test_a_store_question_without_knowledge_is_an_honest_unknown() -> None:
    backend = Recording()
    done = await make_router(backend).answer(msg("Do you offer a student discount?"), Sink())
    assert isinstance(done, ResponseDone)
    assert (done.source, done.reason) == ("fallback", "unanswered")
    assert FALLBACK in done.text
    assert backend.requests == []


async def test_a_cancel_stops_the_generation() -> None:
    backend = Recording(first_token_s=0.0, tokens_per_s=5.0)  # ~2.4 s for 12 tokens
    sink = Sink()
    cancel = asyncio.Event()
    router = make_router(backend)
    task = asyncio.create_task(router.answer(msg("Tell me a long story"), sink, cancel=cancel))
    await asyncio.wait_for(sink.first_delta.wait(), 5)
    cancel.set()
    # Well before the generation's own end (~2 s away); the 1 s target is measured by
    # `make bench` (responder, "Cancel"), not in a timed test on a shared machine.
    terminal = await asyncio.wait_for(task, 1.5)
    assert isinstance(terminal, ResponseError)
    assert (terminal.reason, terminal.code) == ("cancelled", "cancelled")
    assert sum(isinstance(e, ResponseDone | ResponseError) for e in sink.events) == 1
    assert sink.events[-1] is terminal


async def test_a_message_cancelled_before_it_started_ends_at_once() -> None:
    cancel = asyncio.Event()
    cancel.set()
    sink = Sink()
    backend = Recording()
    terminal = await make_router(backend).answer(msg("Tell me a story"), sink, cancel=cancel)
    assert isinstance(terminal, ResponseError) and terminal.reason == "cancelled"
    start = sink.events[0]
    assert isinstance(start, ResponseStart) and start.attempt == terminal.attempt
    assert sink.events == [start, terminal]
    assert backend.requests == []


async def test_a_cancel_after_the_answer_finished_changes_nothing() -> None:
    cancel = asyncio.Event()
    sink = Sink()
    done = await make_router(Recording()).answer(
        msg("What is your return policy?"), sink, cancel=cancel
    )
    cancel.set()
    assert isinstance(done, ResponseDone)
    assert not any(isinstance(e, ResponseError) for e in sink.events)


class Saying(Recording):
    """A model that always says `text`, word by word."""

    def __init__(self, text: str) -> None:
        super().__init__(tokens=100)
        self._text = text

    def words(self, request: LLMRequest) -> list[str]:
        return self._text.split()


GIFT_MEMORY = memory_with_evidence(
    "Store gift cards come in amounts from $10 to $200 and never expire."
)


def generating_router(backend: Recording) -> Router:
    return make_router(backend, memory=GIFT_MEMORY, mode="generate")


async def test_a_generated_answer_that_passes_the_check_is_sent_with_its_sources() -> None:
    backend = Saying("Store gift cards never expire.")
    sink = Sink()
    done = await generating_router(backend).answer(msg("Do gift cards expire?"), sink)
    assert isinstance(done, ResponseDone)
    assert (done.source, done.reason, done.text) == (
        "knowledge",
        None,
        "Store gift cards never expire.",
    )
    assert [s.url for s in done.sources] == ["https://kb/gift"]
    # The model saw the evidence, not raw chunks.
    assert "never expire" in backend.requests[0].messages[0]["content"]


async def test_a_generated_answer_that_fails_the_check_is_never_sent_and_the_source_is_quoted() -> (
    None
):
    backend = Saying("Yes, gift cards expire after 12 months.")
    sink = Sink()
    done = await generating_router(backend).answer(msg("Do gift cards expire?"), sink)
    assert isinstance(done, ResponseDone)
    assert (done.source, done.reason) == ("knowledge", "quoted")
    streamed = "".join(e.text for e in sink.events if isinstance(e, ResponseDelta))
    assert "12 months" not in streamed
    assert streamed.startswith("Store gift cards come in amounts from $10 to $200")


async def test_a_general_answer_that_speaks_for_the_store_is_withheld() -> None:
    backend = Saying("We ship every order for free to students.")
    sink = Sink()
    done = await make_router(backend).answer(msg("Write me a poem"), sink)
    assert isinstance(done, ResponseDone)
    assert (done.source, done.reason) == ("fallback", "withheld")
    streamed = "".join(e.text for e in sink.events if isinstance(e, ResponseDelta))
    assert "free" not in streamed


async def test_earlier_answers_reach_the_model_without_their_citation_and_contact_lines() -> None:
    # Shown its earlier quoted answers whole, the model copied their "(From our help page"
    # line into its own ("You're welcome!\n\n(From..."), which the guard then cut off.
    backend = Recording()
    quoted = (
        "We ship to Japan.\n\n(From our help page: Shipping > International.)\n\n"
        + unsure_line(FALLBACK)
    )
    message = UserMessage(
        message_id="m2",
        session_id="s1",
        text="Write me a poem about the sea",
        history=[
            HistoryTurn(role="user", text="Do you ship to Japan?"),
            HistoryTurn(role="assistant", text=quoted),
        ],
    )
    done = await make_router(backend).answer(message, Sink())
    assert isinstance(done, ResponseDone)
    (request,) = backend.requests
    said = [m["content"] for m in request.chat() if m["role"] == "assistant"]
    assert said == ["We ship to Japan."]
