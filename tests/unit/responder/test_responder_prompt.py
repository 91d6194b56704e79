"""The LLM prompt carries recent turns and knowledge, trimmed to the context window."""

from __future__ import annotations

from datetime import timedelta

import httpx
import structlog

from tidings.common.events import utcnow
from tidings.common.memory_api import Context, KnowledgeChunk, MemoryApiSettings, MemoryClient, Turn
from tidings.responder.memory import ContextSource
from tidings.responder.prompt import PromptLimits, build_prompt, estimate_tokens


def turn(i: int, role: str, text: str) -> Turn:
    return Turn(message_id=f"m{i}", role=role, text=text, ts=utcnow() + timedelta(seconds=i))  # type: ignore[arg-type]


def chunk(i: int, score: float, *, title: str = "Returns", size: int = 40) -> KnowledgeChunk:
    return KnowledgeChunk(
        chunk_id=f"c{i}",
        text=f"chunk {i} " + "x" * size,
        title=title,
        url=f"https://kb/{title.lower()}",
        source="kb",
        score=score,
    )


CONTEXT = Context(
    session_id="s",
    recent=[
        turn(1, "user", "first question"),
        turn(1, "assistant", "first answer"),
        turn(2, "user", "second question"),
        turn(2, "assistant", "second answer"),
        turn(3, "user", "the question"),  # the message being answered, already stored
    ],
    knowledge=[chunk(1, 0.5), chunk(2, 0.9), chunk(3, 0.7, title="Shipping")],
)


def test_everything_fits_in_a_large_budget() -> None:
    prompt = build_prompt("SYS", "the question", CONTEXT, PromptLimits(4000), message_id="m3")
    roles = [m["role"] for m in prompt.messages]
    assert roles == ["system", "system", "user", "assistant", "user", "assistant", "user"]
    assert prompt.messages[0]["content"] == "SYS"
    knowledge = prompt.messages[1]["content"]
    assert knowledge.index("chunk 2") < knowledge.index("chunk 3") < knowledge.index("chunk 1")
    assert [m["content"] for m in prompt.messages[2:]] == [
        "first question",
        "first answer",
        "second question",
        "second answer",
        "the question",
    ]
    # One source per document, best score first.
    assert [(s.title, s.score) for s in prompt.sources] == [("Returns", 0.9), ("Shipping", 0.7)]


def cost(role: str, content: str) -> int:
    return estimate_tokens(content) + 4


def test_a_small_budget_drops_weak_chunks_and_old_turns_first() -> None:
    context = CONTEXT.model_copy(
        update={
            "knowledge": [chunk(1, 0.5, size=400), chunk(2, 0.9), chunk(3, 0.7, title="Shipping")]
        }
    )
    strong = build_prompt(
        "SYS",
        "the question",
        context.model_copy(update={"knowledge": context.knowledge[1:], "recent": []}),
        PromptLimits(4000),
    )
    budget = strong.tokens + cost("user", "second question") + cost("assistant", "second answer")
    prompt = build_prompt("SYS", "the question", context, PromptLimits(budget), message_id="m3")
    assert prompt.tokens <= budget
    contents = [m["content"] for m in prompt.messages]
    assert "chunk 1" not in contents[1] and "chunk 2" in contents[1] and "chunk 3" in contents[1]
    assert contents[2:] == ["second question", "second answer", "the question"]
    assert prompt.chunks_dropped == 1 and prompt.turns_dropped == 2
    assert [s.title for s in prompt.sources] == ["Returns", "Shipping"]


def test_the_system_prompt_and_question_survive_any_budget() -> None:
    prompt = build_prompt("SYS", "the question", CONTEXT, PromptLimits(1), message_id="m3")
    assert prompt.messages == (
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "the question"},
    )
    assert prompt.sources == []


def test_limits_on_turns_and_chunks() -> None:
    prompt = build_prompt(
        "SYS", "q", CONTEXT, PromptLimits(4000, max_turns=2, max_chunks=1), message_id="m3"
    )
    assert [m["content"] for m in prompt.messages[2:]] == ["second question", "second answer", "q"]
    assert len(prompt.sources) == 1


async def test_memory_outage_is_logged_once_and_answers_go_on_without_it() -> None:
    calls = {"n": 0}
    up = {"ok": False}

    def handle(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if not up["ok"]:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, content=CONTEXT.model_dump_json())

    now = [0.0]
    source = ContextSource(
        MemoryClient(
            MemoryApiSettings(url="http://memory.test"), transport=httpx.MockTransport(handle)
        ),
        retry_s=5,
        clock=lambda: now[0],
    )
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            assert await source.context("s", "q", user=None) is None
        now[0] = 6.0
        assert await source.context("s", "q", user=None) is None
        up["ok"] = True
        now[0] = 12.0
        found = await source.context("s", "q", user=None)
    await source.aclose()
    assert found is not None and found.session_id == "s"
    ours = [e["event"] for e in logs if e["log_level"] != "debug" and "context" in e["event"]]
    ours += [e["event"] for e in logs if e["event"] == "memory service is back"]
    assert ours == [
        "memory service unavailable; answering without context until it is back",
        "memory service is back",
    ]
    assert calls["n"] == 3  # not asked again during the retry pause


async def test_a_refused_request_does_not_switch_memory_off_for_everyone() -> None:
    asked: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        user = request.url.params.get("user")
        asked.append(user)
        if user and len(user) > 200:
            return httpx.Response(422, json={"error": {"code": "invalid_request"}})
        return httpx.Response(200, content=CONTEXT.model_dump_json())

    source = ContextSource(
        MemoryClient(
            MemoryApiSettings(url="http://memory.test"), transport=httpx.MockTransport(handle)
        ),
        retry_s=5,
        clock=lambda: 0.0,
    )
    refused = await source.context("s", "q", user="u" * 201)
    others = await source.context("s", "q", user="alice")
    await source.aclose()

    assert refused is None
    assert others is not None and source.available
    assert asked == ["u" * 201, "alice"]


async def test_memory_off_is_never_asked() -> None:
    source = ContextSource(MemoryClient(MemoryApiSettings(url="")))
    assert not source.enabled
    assert await source.context("s", "q", user=None) is None
    await source.aclose()
