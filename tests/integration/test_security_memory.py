"""Nobody reads what is not theirs, on the real stack: the memory API's service credential,
its separate metrics port, and session ownership that outlives the gateway's knowledge.

A real broker, the memory service (real model, Qdrant local mode) with MEMORY_API_TOKEN, and
a gateway with JWT auth that started after the session's first message, so it can only
learn the owner from memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tidings.common.events import ResponseDone, UserMessage, new_id
from tidings.common.kafka import ensure_topics, kafka_producer, publish
from tidings.common.settings import KafkaSettings, QdrantSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings
from tidings.memory.embedder import Embedder
from tidings.memory.service import MemoryService
from tidings.memory.settings import MemorySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "memory-credential-for-the-security-tests-0123456789"
JWT_SECRET = "jwt-secret-for-the-security-tests-0123456789"
SECRET_TEXT = "My gift card code is ZX-4242."


def bearer(sub: str) -> dict[str, str]:
    claims: dict[str, Any] = {"sub": sub, "exp": int(time.time() + 300)}
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


@pytest.fixture
async def memory(
    kafka_settings: KafkaSettings, tmp_path: Path, embedder: Embedder
) -> AsyncIterator[MemoryService]:
    settings = MemorySettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        api_token=TOKEN,
        group_id=f"{kafka_settings.topic_prefix}memory",
        batch_wait_ms=50,
        kafka=kafka_settings,
        qdrant=QdrantSettings(path=tmp_path / "qdrant", collection="security"),
    )
    async with MemoryService(settings, embedder=embedder) as service:
        yield service


async def alice_said(kafka: KafkaSettings, memory: MemoryService) -> str:
    """A session of Alice's whose question and answer memory has stored; its id."""
    session_id, message_id = new_id(), new_id()
    await ensure_topics(kafka)
    async with kafka_producer(kafka, name="test") as producer:
        question = UserMessage(
            message_id=message_id, session_id=session_id, user="alice", text=SECRET_TEXT
        )
        await publish(producer, kafka.user_messages_topic, question, key=session_id)
        answer = ResponseDone(
            message_id=message_id, session_id=session_id, attempt="a", text="Noted.", source="llm"
        )
        await publish(producer, kafka.model_responses_topic, answer, key=session_id)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{memory.port}") as http:
        for _ in range(300):
            stored = await http.get(
                f"/sessions/{session_id}/messages", params={"user": "alice"}, headers=headers
            )
            if stored.status_code == 200 and len(stored.json()["messages"]) == 2:
                return session_id
            await asyncio.sleep(0.1)
    raise AssertionError("memory did not store Alice's turns")


async def test_the_memory_api_needs_its_credential_and_metrics_are_elsewhere(
    kafka_settings: KafkaSettings, memory: MemoryService
) -> None:
    session_id = await alice_said(kafka_settings, memory)
    api = f"http://127.0.0.1:{memory.port}"
    context = f"/context?session_id={session_id}&query=gift+card&user=alice"
    history = f"/sessions/{session_id}/messages?user=alice"
    async with httpx.AsyncClient(base_url=api) as http:
        for path in (context, history, f"/sessions/{session_id}/owner"):
            for headers in ({}, {"Authorization": "Bearer not-the-token"}):
                refused = await http.get(path, headers=headers)
                assert refused.status_code == 401, (path, refused.text)
                assert refused.json()["error"]["code"] == "unauthorized"
                assert "ZX-4242" not in refused.text
        embed = await http.post("/embed", json={"texts": ["hi"]})
        assert embed.status_code == 401
        granted = await http.get(context, headers={"Authorization": f"Bearer {TOKEN}"})
        assert granted.status_code == 200
        assert SECRET_TEXT in granted.text
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/metrics")).status_code == 404

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{memory.metrics_port}") as metrics:
        scraped = await metrics.get("/metrics")
        assert scraped.status_code == 200 and "tidings_memory" in scraped.text
        # Whoever reaches the metrics port reaches no data.
        for path in (context, history):
            assert (await metrics.get(path)).status_code == 404


async def test_a_dormant_session_stays_its_owners_on_a_gateway_that_never_saw_it(
    kafka_settings: KafkaSettings, memory: MemoryService
) -> None:
    session_id = await alice_said(kafka_settings, memory)
    # Started now and reading nothing back, this replica has never heard of the session:
    # only memory knows whose it is.
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        kafka=kafka_settings,
        memory={"url": f"http://127.0.0.1:{memory.port}", "api_token": TOKEN},
        auth="jwt",
        jwt_secret=JWT_SECRET,
        backfill_max_records=0,
        ownership_wait_s=0.5,
    )
    async with (
        GatewayService(settings) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as http,
    ):
        claim = await http.post(
            "/chat",
            json={"message": "what is my gift card code?", "session_id": session_id},
            headers=bearer("mallory"),
        )
        read = await http.get(f"/sessions/{session_id}/messages", headers=bearer("mallory"))
        for refused in (claim, read):
            assert refused.status_code == 404, refused.text
            assert refused.json()["error"]["code"] == "session_not_found"

        own = await http.get(f"/sessions/{session_id}/messages", headers=bearer("alice"))
        assert own.status_code == 200, own.text
        assert [m["text"] for m in own.json()["messages"]] == [SECRET_TEXT, "Noted."]
        assert own.headers["cache-control"] == "no-store"
        again = await http.post(
            "/chat", json={"message": "thanks", "session_id": session_id}, headers=bearer("alice")
        )
        assert again.status_code == 202, again.text


async def test_ownership_that_cannot_be_checked_is_not_granted(
    kafka_settings: KafkaSettings, memory: MemoryService
) -> None:
    session_id = await alice_said(kafka_settings, memory)
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        kafka=kafka_settings,
        # A gateway without the credential: memory refuses it, so no owner can be looked up.
        memory={"url": f"http://127.0.0.1:{memory.port}"},
        auth="jwt",
        jwt_secret=JWT_SECRET,
        backfill_max_records=0,
    )
    async with (
        GatewayService(settings) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as http,
    ):
        claim = await http.post(
            "/chat", json={"message": "hi", "session_id": session_id}, headers=bearer("mallory")
        )
    assert claim.status_code == 503
    assert claim.json()["error"]["code"] == "ownership_unavailable"
    assert "retry-after" in claim.headers
