"""The gateway's front door against a real broker: OpenAI `user` fields that name no one
else's session, rate limits on reads and cancels, bodies read with a limit, JWT algorithm
confusion, and the headers personal data goes out with."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from tidings.common.settings import KafkaSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SECRET = "jwt-secret-for-the-gateway-security-tests-0123"


def bearer(sub: str) -> dict[str, str]:
    claims: dict[str, Any] = {"sub": sub, "exp": int(time.time() + 300)}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


async def gateway(kafka: KafkaSettings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(
        host="127.0.0.1", port=0, kafka=kafka, memory={"url": ""}, **overrides
    )
    async with (
        GatewayService(settings) as service,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10) as http,
    ):
        yield http


@pytest.fixture
async def anonymous(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    async for http in gateway(kafka_settings):
        yield http


@pytest.fixture
async def signed(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    async for http in gateway(kafka_settings, auth="jwt", jwt_secret=SECRET):
        yield http


async def v1_session(http: httpx.AsyncClient, user: str, headers: dict[str, str]) -> str:
    """The session a streaming /v1 request with `user` lands in (read from its headers)."""
    body = {
        "model": "tidings",
        "stream": True,
        "user": user,
        "messages": [{"role": "user", "content": "where is my order?"}],
    }
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as answer:
        assert answer.status_code == 200, await answer.aread()
        return answer.headers["x-session-id"]


async def test_an_anonymous_v1_user_field_names_no_session(anonymous: httpx.AsyncClient) -> None:
    first = await v1_session(anonymous, "alice@example.com", {})
    second = await v1_session(anonymous, "alice@example.com", {})

    # Whoever sends Alice's e-mail does not land in the session of whoever sent it before.
    assert first != second


async def test_a_v1_user_field_is_bound_to_the_signed_in_caller(signed: httpx.AsyncClient) -> None:
    alice = await v1_session(signed, "alice@example.com", bearer("alice"))
    alice_again = await v1_session(signed, "alice@example.com", bearer("alice"))
    mallory = await v1_session(signed, "alice@example.com", bearer("mallory"))

    assert alice == alice_again  # a conversation continues for its owner
    assert mallory != alice
    history = await signed.get(f"/sessions/{alice}/messages", headers=bearer("mallory"))
    assert history.status_code == 404


@pytest.fixture
async def strict(kafka_settings: KafkaSettings) -> AsyncIterator[httpx.AsyncClient]:
    async for http in gateway(kafka_settings, request_rate_per_s=0.01, request_burst=3):
        yield http


async def test_stream_opens_history_and_cancels_share_a_rate_limit(
    strict: httpx.AsyncClient,
) -> None:
    session = "rate-limited-session"
    statuses = []
    for _ in range(2):
        async with strict.stream("GET", "/stream", params={"session_id": session}) as opened:
            statuses.append(opened.status_code)
    cancel = await strict.post("/chat/m1/cancel", json={"session_id": session})
    statuses.append(cancel.status_code)
    refused = [
        await strict.get(f"/sessions/{session}/messages"),
        await strict.post("/chat/m1/cancel", json={"session_id": session}),
    ]
    async with strict.stream("GET", "/stream", params={"session_id": session}) as stream:
        await stream.aread()
        refused.append(stream)

    assert statuses == [200, 200, 202]
    for response in refused:
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1
    # Sending messages has a bucket of its own.
    assert (await strict.post("/chat", json={"message": "hi"})).status_code == 202


async def test_a_cancel_body_is_refused_as_soon_as_it_passes_its_limit(
    anonymous: httpx.AsyncClient,
) -> None:
    # A chunked body that never ends: a route that read it whole would never answer.
    port = anonymous.base_url.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /chat/m1/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for _ in range(4):
        writer.write(b"400\r\n" + b" " * 1024 + b"\r\n")
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    finally:
        writer.close()

    assert head.startswith(b"HTTP/1.1 413")


async def test_hsts_goes_out_on_https_only(
    anonymous: httpx.AsyncClient,
) -> None:
    # 127.0.0.1 is a trusted proxy by default: its X-Forwarded-Proto says how users came.
    behind_tls = await anonymous.get("/health", headers={"X-Forwarded-Proto": "https"})
    plain = await anonymous.get("/health")

    assert behind_tls.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "strict-transport-security" not in plain.headers


async def test_personal_data_is_never_cached(anonymous: httpx.AsyncClient) -> None:
    accepted = await anonymous.post("/chat", json={"message": "my address is 1 Main St"})
    params = {"session_id": accepted.json()["session_id"], "message_id": "x"}
    async with anonymous.stream("GET", "/stream", params=params) as stream:
        streamed = stream.headers

    assert accepted.headers["cache-control"] == "no-store"
    assert streamed["cache-control"] == "no-store"
