"""The memory HTTP API on Qdrant local mode with a fake embedder (nothing to run).

The fake embedder gives every text the same direction, so every stored turn is as
"similar" as it can be to every query: whatever keeps another user's turns out of a
context must be the filter, not the similarity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from tidings.common.memory_api import Context, KnowledgeChunk, SessionMessages
from tidings.common.service_auth import bearer_header
from tidings.common.settings import QdrantSettings
from tidings.memory.api import MemoryBackends, memory_app
from tidings.memory.collection import ModelStamp
from tidings.memory.context import within_budget
from tidings.memory.knowledge.documents import Document, Section
from tidings.memory.knowledge.ingest import Ingestor
from tidings.memory.knowledge.store import KnowledgeStore
from tidings.memory.service import MemoryService
from tidings.memory.settings import MemorySettings
from tidings.memory.store import TurnStore, open_qdrant
from tidings.memory.turns import Turn

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TOKEN = SecretStr("memory-service-credential-of-32-chars-or-more")
STAMP = ModelStamp("same-direction", 3)


class SameDirection:
    """Every text maps to the same unit vector."""

    dimension = 3
    name = "same-direction"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[1.0, 0.0, 0.0] for _ in texts]


def turn(
    message_id: str,
    role: str = "user",
    *,
    session_id: str = "s-alice",
    user: str | None = "alice",
    text: str = "hello",
    minute: int = 0,
) -> Turn:
    return Turn(
        role=role,  # type: ignore[arg-type]
        session_id=session_id,
        message_id=message_id,
        text=text,
        ts=T0 + timedelta(minutes=minute),
        user=user,
        source="llm" if role == "assistant" else None,
    )


class Api:
    def __init__(self, client: httpx.AsyncClient, turns: TurnStore) -> None:
        self.client = client
        self.turns = turns

    async def store(self, *turns: Turn) -> None:
        await self.turns.upsert(list(turns), [[1.0, 0.0, 0.0]] * len(turns))

    async def context(self, **params: str) -> Context:
        response = await self.client.get("/context", params=params)
        assert response.status_code == 200, response.text
        return Context.model_validate_json(response.content)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = MemorySettings(
        context_recent_turns=2,
        context_related_turns=10,
        context_max_chars=10_000,
        api_token=TOKEN,
    )
    async with open_qdrant(QdrantSettings(path=tmp_path / "q", collection="turns")) as qdrant:
        turns = TurnStore(qdrant, "turns")
        await turns.ensure_collection(STAMP)
        knowledge = KnowledgeStore(qdrant, "kb")
        await knowledge.ensure_collection(STAMP)
        document = Document(
            root="test",
            key="shipping.md",
            title="Shipping",
            source="kb/shipping.md",
            url="https://shop.example/shipping",
            sections=(Section(("Shipping", "Canada"), "We ship to Canada."),),
        )
        await Ingestor(knowledge, SameDirection(), max_chars=500, overlap_chars=50).ingest(
            "test", [document]
        )

        async def ready() -> dict[str, bool]:
            return {"qdrant": True}

        app = memory_app(MemoryBackends(turns, knowledge, SameDirection()), settings, ready)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://memory", headers=bearer_header(TOKEN)
        ) as client:
            yield Api(client, turns)


async def test_context_has_recent_turns_in_order_related_turns_and_knowledge(api: Api) -> None:
    await api.store(
        turn("m1", text="Do you ship to Canada?", minute=1),
        turn("m1", "assistant", text="Yes, in 7-10 business days.", minute=2),
        turn("m2", text="And to Mexico?", minute=3),
        turn("m2", "assistant", text="Yes, Mexico too.", minute=4),
        turn("m0", session_id="s-alice-old", text="My name is Alice.", minute=0),
    )

    context = await api.context(session_id="s-alice", query="shipping", user="alice")

    assert context.session_id == "s-alice"
    assert [t.text for t in context.recent] == ["And to Mexico?", "Yes, Mexico too."]
    assert [t.role for t in context.recent] == ["user", "assistant"]
    assert context.recent[1].source == "llm"
    # Earlier turns of this session and of Alice's other session, not repeating the recent.
    assert {t.text for t in context.related} == {
        "Do you ship to Canada?",
        "Yes, in 7-10 business days.",
        "My name is Alice.",
    }
    assert all(t.score is not None for t in context.related)
    [chunk] = context.knowledge
    assert (chunk.title, chunk.url, chunk.source) == (
        "Shipping > Canada",
        "https://shop.example/shipping",
        "kb/shipping.md",
    )
    assert chunk.text == "We ship to Canada." and chunk.score > 0.99


async def test_another_users_turns_never_reach_a_context(api: Api) -> None:
    await api.store(
        turn("a1", session_id="s-alice", user="alice", text="My card ends in 4242."),
        turn("b1", session_id="s-bob", user="bob", text="Where is my book?"),
        turn("n1", session_id="s-anon", user=None, text="Anonymous question."),
    )

    bob = await api.context(session_id="s-bob", query="my card number", user="bob")
    anonymous = await api.context(session_id="s-anon", query="my card number")
    # Claiming Alice's session id as Bob still only yields that session's turns (which the
    # gateway's ownership check guards), never Alice's other sessions.
    alice_other = await api.context(session_id="s-new", query="my card number", user="alice")

    texts = {t.text for c in (bob, anonymous) for t in (*c.recent, *c.related)}
    assert "My card ends in 4242." not in texts
    assert {t.text for t in (*bob.recent, *bob.related)} == {"Where is my book?"}
    assert {t.text for t in (*anonymous.recent, *anonymous.related)} == {"Anonymous question."}
    assert [t.text for t in alice_other.related] == ["My card ends in 4242."]


async def test_session_messages_in_order_and_only_for_their_owner(api: Api) -> None:
    await api.store(
        turn("m2", "assistant", text="A2", minute=4),
        turn("m1", text="Q1", minute=1),
        turn("m1", "assistant", text="A1", minute=2),
        turn("m2", text="Q2", minute=3),
    )

    anyone = await api.client.get("/sessions/s-alice/messages")
    owner = await api.client.get("/sessions/s-alice/messages", params={"user": "alice"})
    other = await api.client.get("/sessions/s-alice/messages", params={"user": "bob"})
    empty = await api.client.get("/sessions/nothing-yet/messages", params={"user": "bob"})

    assert owner.status_code == 200
    messages = SessionMessages.model_validate_json(owner.content)
    assert [m.text for m in messages.messages] == ["Q1", "A1", "Q2", "A2"]
    assert messages.session_id == "s-alice" and messages.next_cursor is None
    # Without `user` the caller is anonymous: a signed-in user's session is not theirs.
    for refused in (anyone, other):
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "session_not_found"
    assert empty.status_code == 200 and empty.json()["messages"] == []


async def test_session_messages_come_in_pages_and_by_message(api: Api) -> None:
    await api.store(*(turn(f"m{i}", text=f"Q{i}", minute=i) for i in range(5)))

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params = {"user": "alice", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = SessionMessages.model_validate_json(
            (await api.client.get("/sessions/s-alice/messages", params=params)).content
        )
        pages.append([m.text for m in page.messages])
        cursor = page.next_cursor
        if cursor is None:
            break
    one = await api.client.get(
        "/sessions/s-alice/messages", params={"user": "alice", "message_id": "m3"}
    )
    too_many = await api.client.get("/sessions/s-alice/messages", params={"limit": "501"})

    assert pages == [["Q0", "Q1"], ["Q2", "Q3"], ["Q4"]]
    assert [m["text"] for m in one.json()["messages"]] == ["Q3"]
    assert too_many.status_code == 422


async def test_a_claimed_session_gives_the_new_caller_none_of_its_turns(api: Api) -> None:
    await api.store(
        turn("a1", session_id="s-old", user="alice", text="My card ends in 4242.", minute=1),
        turn("a1", "assistant", session_id="s-old", user="alice", text="Noted.", minute=2),
        turn("m1", session_id="s-mallory", user="mallory", text="hi", minute=3),
    )

    taken = await api.context(session_id="s-old", query="my card", user="mallory")
    anonymous = await api.context(session_id="s-old", query="my card")
    owner = await api.client.get("/sessions/s-old/owner")
    nobody = await api.client.get("/sessions/s-new/owner")

    for context in (taken, anonymous):
        texts = {t.text for t in (*context.recent, *context.related)}
        assert "My card ends in 4242." not in texts and "Noted." not in texts
    assert {t.text for t in taken.related} == {"hi"}
    assert owner.json() == {"session_id": "s-old", "exists": True, "user": "alice"}
    assert nobody.json() == {"session_id": "s-new", "exists": False, "user": None}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/context?session_id=s1&query=hi"),
        ("GET", "/sessions/s-alice/messages?user=alice"),
        ("GET", "/sessions/s-alice/owner"),
        ("POST", "/embed"),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic abc"])
async def test_every_data_route_needs_the_service_credential(
    api: Api, method: str, path: str, authorization: str | None
) -> None:
    await api.store(turn("a1", text="My card ends in 4242."))
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(transport=api.client._transport, base_url="http://memory") as bare:
        response = await bare.request(method, path, headers=headers, json={"texts": ["hi"]})
        health = await bare.get("/health")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "4242" not in response.text
    assert health.status_code == 200


async def test_the_api_beyond_loopback_needs_a_credential() -> None:
    with pytest.raises(ValueError, match="MEMORY_API_TOKEN"):
        async with MemoryService(MemorySettings(host="0.0.0.0"), embedder=SameDirection()):
            pass
    with pytest.raises(ValidationError, match="at least 32"):
        MemorySettings(host="0.0.0.0", api_token=SecretStr("short"))
    assert MemorySettings().host == "127.0.0.1"
    MemorySettings().check_exposure()
    MemorySettings(host="0.0.0.0", api_token=TOKEN).check_exposure()


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/context", {"query": "hi"}),
        ("/context", {"session_id": "s1"}),
        ("/context", {"session_id": "", "query": "hi"}),
        ("/context", {"session_id": "s1", "query": "x" * 10_001}),
        ("/sessions/s1/messages", {"user": "u" * 201}),
    ],
)
async def test_bad_parameters_get_a_json_422(api: Api, path: str, params: dict[str, Any]) -> None:
    response = await api.client.get(path, params=params)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["message"]


async def test_unknown_path_is_a_json_404_and_probes_still_answer(api: Api) -> None:
    missing = await api.client.get("/nope")
    health = await api.client.get("/health")
    ready = await api.client.get("/ready")

    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert health.json() == {"status": "ok", "service": "memory"}
    assert ready.status_code == 200


async def test_qdrant_failure_is_a_503_not_a_stack_trace(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise ConnectionError("qdrant is down")

    monkeypatch.setattr(api.turns, "recent", broken)

    response = await api.client.get("/context", params={"session_id": "s1", "query": "hi"})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "memory_unavailable"
    assert "qdrant is down" not in response.text


def chunk(text: str, score: float = 0.9) -> KnowledgeChunk:
    return KnowledgeChunk(chunk_id=text, text=text, title="T", source="s", score=score)


def test_budget_takes_the_best_of_each_kind_in_turn_and_skips_what_does_not_fit() -> None:
    recent = [turn(f"r{i}", text=f"recent-{i}-" + "x" * 40, minute=i) for i in range(4)]
    related = [(turn(f"o{i}", text=f"related-{i}-" + "y" * 40), 0.8 - i / 10) for i in range(3)]
    knowledge = [chunk("k0-" + "z" * 300), chunk("k1-short"), chunk("k2-" + "z" * 40)]

    context = within_budget("s", recent, related, knowledge, max_chars=220)

    total = sum(len(t.text) for t in (*context.recent, *context.related))
    total += sum(len(c.text) for c in context.knowledge)
    assert total <= 220
    # Round 1: newest recent turn, k0 does not fit (skipped), best related; round 2: ...
    assert [t.message_id for t in context.recent] == ["r2", "r3"]  # oldest first
    assert [c.chunk_id for c in context.knowledge] == ["k1-short"]
    assert [t.message_id for t in context.related] == ["o0", "o1"]


def test_budget_keeps_everything_when_it_fits() -> None:
    recent = [turn("r0", text="a"), turn("r1", text="b", minute=1)]
    context = within_budget("s", recent, [], [chunk("c")], max_chars=100)

    assert [t.text for t in context.recent] == ["a", "b"]
    assert [c.text for c in context.knowledge] == ["c"]


async def test_context_returns_the_chunks_asked_for_and_scored_evidence_outside_the_budget(
    api: Api,
) -> None:
    none = await api.context(session_id="s-x", query="Do you ship to Canada?", chunks="0")
    assert none.knowledge == []
    scored = await api.context(
        session_id="s-x", query="Do you ship to Canada?", evidence="true", chunks="5"
    )
    assert [c.title for c in scored.knowledge] == ["Shipping > Canada"]
    assert [s.text for s in scored.knowledge[0].sentences] == ["We ship to Canada."]
    too_many = await api.client.get(
        "/context", params={"session_id": "s-x", "query": "q", "chunks": "51"}
    )
    assert too_many.status_code == 422
    assert too_many.json()["error"]["code"]
