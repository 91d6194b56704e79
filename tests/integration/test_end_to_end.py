"""The whole path: HTTP -> gateway -> Kafka -> responder (FAQ or the real model) -> Kafka ->
gateway -> SSE, with the memory worker writing both turns into Qdrant.

The three services run in this process against the session's real broker and llama.cpp
server, each test on its own topics, talking real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from qdrant_client import QdrantClient, models

from tidings.common.settings import KafkaSettings, LLMSettings, QdrantSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings
from tidings.memory.service import MemoryService
from tidings.memory.settings import MemorySettings
from tidings.responder.service import ResponderService
from tidings.responder.settings import ResponderSettings

pytestmark = pytest.mark.integration

RETURNS_ANSWER = "We accept returns within 30 days. Books must be in original condition."


@dataclass
class Stack:
    client: httpx.AsyncClient
    qdrant_path: Path
    collection: str
    memory: MemoryService


@pytest.fixture
async def stack(
    kafka_settings: KafkaSettings,
    llm_settings: LLMSettings,
    embedder: Any,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    qdrant = QdrantSettings(path=tmp_path / "qdrant", collection="e2e_memory")
    async with AsyncExitStack() as services:
        memory = await services.enter_async_context(
            MemoryService(
                MemorySettings(
                    host="127.0.0.1",
                    port=0,
                    group_id=f"{kafka_settings.topic_prefix}memory",
                    kafka=kafka_settings,
                    qdrant=qdrant,
                ),
                embedder=embedder,
            )
        )
        await services.enter_async_context(
            ResponderService(
                ResponderSettings(
                    host="127.0.0.1",
                    port=0,
                    group_id=f"{kafka_settings.topic_prefix}responder",
                    kafka=kafka_settings,
                    llm=llm_settings,
                )
            )
        )
        gateway = await services.enter_async_context(
            GatewayService(GatewaySettings(host="127.0.0.1", port=0, kafka=kafka_settings))
        )
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gateway.port}", timeout=60
        ) as client:
            yield Stack(client, qdrant.path, qdrant.collection, memory)


async def post_chat(client: httpx.AsyncClient, message: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/chat", json={"message": message, **extra})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert body["stream_url"] == (
        f"/stream?session_id={body['session_id']}&message_id={body['message_id']}"
    )
    return body


async def read_stream(client: httpx.AsyncClient, url: str) -> list[tuple[str, dict[str, Any]]]:
    """Every SSE event of the stream until the server ends the response."""
    events: list[tuple[str, dict[str, Any]]] = []
    async with aconnect_sse(client, "GET", url) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            # A block without data (the opening `retry:` hint) is not an event for a
            # browser (WHATWG SSE: an empty data buffer is not dispatched).
            if sse.data:
                events.append((sse.event, json.loads(sse.data)))
    return events


async def test_faq_question_is_answered_from_the_faq(stack: Stack) -> None:
    accepted = await post_chat(stack.client, "What is your return policy?")
    events = await asyncio.wait_for(read_stream(stack.client, accepted["stream_url"]), 60)

    names = [name for name, _ in events]
    assert names[0] == "start"
    assert names[-1] == "done", names
    assert names.count("done") == 1
    done = events[-1][1]
    assert done["message_id"] == accepted["message_id"]
    assert done["source"] == "faq"
    assert done["text"] == RETURNS_ANSWER
    streamed = "".join(data["delta"] for name, data in events if name == "token")
    assert streamed == RETURNS_ANSWER


async def test_open_question_streams_from_the_model_and_both_turns_reach_qdrant(
    stack: Stack,
) -> None:
    accepted = await post_chat(stack.client, "Write two sentences about why people love reading.")
    events = await asyncio.wait_for(read_stream(stack.client, accepted["stream_url"]), 120)

    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done", names
    tokens = [data for name, data in events if name == "token"]
    assert len(tokens) >= 2, f"expected the answer to stream in pieces, got {names}"
    assert [t["seq"] for t in tokens] == sorted(t["seq"] for t in tokens)
    done = events[-1][1]
    assert done["source"] == "llm"
    assert done["text"].strip()
    assert "".join(t["delta"] for t in tokens) == done["text"]

    # Both turns are embedded and stored; the memory worker owns the local Qdrant files
    # (local mode is single-process), so wait for it, stop it, then read them directly.
    session_id = accepted["session_id"]
    roles: set[str] = set()
    for _ in range(100):
        roles = {turn.role for turn in await stack.memory.store.session_turns(session_id)}
        if roles == {"user", "assistant"}:
            break
        await asyncio.sleep(0.2)
    assert roles == {"user", "assistant"}
    await stack.memory.__aexit__(None, None, None)

    client = QdrantClient(path=str(stack.qdrant_path))
    try:
        points, _ = client.scroll(
            stack.collection,
            scroll_filter=models.Filter(
                must=[
                    models.FieldCondition(
                        key="session_id", match=models.MatchValue(value=session_id)
                    )
                ]
            ),
            with_vectors=True,
        )
    finally:
        client.close()
    by_role = {p.payload["role"]: p for p in points if p.payload}
    assert set(by_role) == {"user", "assistant"}
    assert by_role["user"].payload is not None
    assert by_role["user"].payload["text"] == "Write two sentences about why people love reading."
    assert by_role["assistant"].payload is not None
    assert by_role["assistant"].payload["text"] == done["text"]
    for point in points:
        assert point.payload is not None
        assert point.payload["message_id"] == accepted["message_id"]
        assert isinstance(point.vector, list) and len(point.vector) == 384


async def test_stream_opened_after_the_answer_finished_still_gets_it(stack: Stack) -> None:
    first = await post_chat(stack.client, "How long does shipping take?")
    # Wait for the answer to finish without listening to it...
    session_stream = f"/stream?session_id={first['session_id']}&message_id={first['message_id']}"
    await asyncio.wait_for(read_stream(stack.client, session_stream), 60)
    # ...then a fresh client connects afterwards and still gets the whole answer.
    events = await asyncio.wait_for(read_stream(stack.client, first["stream_url"]), 30)
    assert [name for name, _ in events][-1] == "done"
    assert events[-1][1]["source"] == "faq"
    assert "5-7 business days" in events[-1][1]["text"]


async def test_session_continues_with_a_second_message(stack: Stack) -> None:
    first = await post_chat(stack.client, "Hello")
    second = await post_chat(
        stack.client, "Which payment methods do you accept?", session_id=first["session_id"]
    )
    assert second["session_id"] == first["session_id"]
    assert second["message_id"] != first["message_id"]
    events = await asyncio.wait_for(read_stream(stack.client, second["stream_url"]), 60)
    done = events[-1][1]
    assert done["message_id"] == second["message_id"]
    assert "PayPal" in done["text"]


async def test_bad_input_gets_json_errors(stack: Stack) -> None:
    malformed = await stack.client.post(
        "/chat", content=b'{"message": "hi"', headers={"content-type": "application/json"}
    )
    assert 400 <= malformed.status_code < 500
    assert malformed.json()["error"]["code"]

    empty = await stack.client.post("/chat", json={"message": "   "})
    assert 400 <= empty.status_code < 500
    error = empty.json()["error"]
    assert error["code"] and error["message"]
    assert "Traceback" not in empty.text
