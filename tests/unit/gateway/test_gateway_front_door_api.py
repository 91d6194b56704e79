"""The front door over fakes: tokens, ownership, stream caps, history, cancel, resume
fallback, gateway-decided errors, CORS, security headers and the OpenAI error shape."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from gateway_fakes import FakePublisher, Positions, delta, done, parse_sse, start

from tidings.common.events import CancelRequest, UserMessage
from tidings.common.memory_api import MemoryApiSettings, MemoryClient
from tidings.common.runtime import HttpServer
from tidings.gateway.app import create_app
from tidings.gateway.hub import FanoutHub
from tidings.gateway.readiness import Readiness
from tidings.gateway.replay import ReplayBuffer
from tidings.gateway.settings import GatewaySettings

SECRET = "unit-test-secret-long-enough-for-hs256!"
SESSION = "session-front-door"


async def _true() -> bool:
    return True


async def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def history_transport(turns: list[dict[str, Any]] | None) -> httpx.MockTransport:
    """A memory service holding `turns` for every session (None: it answers 500)."""

    def handle(request: httpx.Request) -> httpx.Response:
        if turns is None:
            return httpx.Response(500)
        session_id = request.url.path.split("/")[2]
        if request.url.path.endswith("/owner"):
            # Nothing stored: sessions are owned as the gateway learns them from the topic.
            return httpx.Response(200, json={"session_id": session_id, "exists": False})
        return httpx.Response(200, json={"session_id": session_id, "messages": turns})

    return httpx.MockTransport(handle)


@dataclass
class Gateway:
    client: httpx.AsyncClient
    publisher: FakePublisher
    hub: FanoutHub


def build(
    settings: GatewaySettings,
    *,
    turns: list[dict[str, Any]] | None = None,
    memory: bool = True,
    broker_down_for: Callable[[], float] = lambda: 0.0,
) -> tuple[Any, FakePublisher, FanoutHub]:
    hub = FanoutHub(
        ReplayBuffer(max_events_per_session=100, max_sessions=100, max_age_s=600),
        max_pending=100,
    )
    publisher = FakePublisher()
    client = (
        MemoryClient(
            MemoryApiSettings(url="http://memory.test"), transport=history_transport(turns)
        )
        if memory
        else None
    )
    readiness = Readiness(producer_up=lambda: True, fanout_ready=lambda: True, broker_probe=_true)
    app = create_app(
        settings,
        publisher=publisher,
        hub=hub,
        readiness=readiness,
        memory=client,
        broker_down_for=broker_down_for,
    )
    return app, publisher, hub


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    app, publisher, hub = build(
        GatewaySettings(answer_start_timeout_s=0.3),
        turns=[
            {"message_id": "m1", "role": "user", "text": "hi", "ts": "2026-01-01T00:00:00Z"},
            {
                "message_id": "m1",
                "role": "assistant",
                "text": "Hello from history.",
                "ts": "2026-01-01T00:00:01Z",
                "source": "faq",
            },
        ],
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Gateway(client, publisher, hub)


def hs256(sub: str, **claims: Any) -> dict[str, str]:
    body = {"sub": sub, "exp": int(time.time()) + 60, "aud": "tidings", **claims}
    return {"Authorization": "Bearer " + jwt.encode(body, SECRET, algorithm="HS256")}


@pytest.fixture
async def jwt_gateway() -> AsyncIterator[Gateway]:
    settings = GatewaySettings(
        auth="jwt", jwt_secret=SECRET, jwt_audience="tidings", ownership_wait_s=0.05
    )
    app, publisher, hub = build(settings, turns=[])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Gateway(client, publisher, hub)


async def test_jwt_subject_is_the_sender_and_owner(jwt_gateway: Gateway) -> None:
    client = jwt_gateway.client
    assert (await client.post("/chat", json={"message": "hi"})).status_code == 401
    assert (
        await client.post("/chat", json={"message": "hi"}, headers={"Authorization": "Basic x"})
    ).status_code == 401
    bad_aud = await client.post("/chat", json={"message": "hi"}, headers=hs256("a", aud="x"))
    assert bad_aud.status_code == 401
    no_exp = jwt.encode({"sub": "a", "aud": "tidings"}, SECRET, algorithm="HS256")
    missing_exp = await client.post(
        "/chat", json={"message": "hi"}, headers={"Authorization": f"Bearer {no_exp}"}
    )
    assert missing_exp.status_code == 401

    accepted = await client.post("/chat", json={"message": "hi"}, headers=hs256("alice"))
    session_id = accepted.json()["session_id"]
    [(message, _)] = jwt_gateway.publisher.sent

    assert isinstance(message, UserMessage) and message.user == "alice"
    other = await client.get(f"/sessions/{session_id}/messages", headers=hs256("bob"))
    own = await client.get(f"/sessions/{session_id}/messages", headers=hs256("alice"))
    assert other.status_code == 404
    assert own.status_code == 200
    unknown = await client.get("/sessions/never-created-1/messages", headers=hs256("alice"))
    assert unknown.status_code == 404


class _JwksHandler(BaseHTTPRequestHandler):
    jwks: bytes = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.jwks)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_url() -> Iterator[tuple[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    _JwksHandler.jwks = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig"}]}).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JwksHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", key
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_rs256_tokens_are_checked_against_the_jwks(jwks_url: tuple[str, Any]) -> None:
    url, key = jwks_url
    settings = GatewaySettings(auth="jwt", jwt_jwks_url=url, jwt_issuer="https://idp.test")
    app, publisher, _ = build(settings)
    claims = {"sub": "carol", "iss": "https://idp.test", "exp": int(time.time()) + 60}
    good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    wrong_issuer = jwt.encode(
        {**claims, "iss": "https://evil.test"}, key, algorithm="RS256", headers={"kid": "k1"}
    )
    unknown_kid = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "nope"})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:

        async def post(token: str) -> int:
            response = await client.post(
                "/chat", json={"message": "hi"}, headers={"Authorization": f"Bearer {token}"}
            )
            return response.status_code

        assert await post(good) == 202
        assert await post(wrong_issuer) == 401
        assert await post(unknown_kid) == 401
        assert await post(jwt.encode(claims, "x" * 40, algorithm="HS256")) == 401
    assert publisher.sent[0][0].user == "carol"


def test_jwt_without_keys_or_with_a_weak_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="JWT"):
        GatewaySettings(auth="jwt")
    with pytest.raises(ValueError, match="32"):
        GatewaySettings(auth="jwt", jwt_secret="short")


async def test_history_comes_from_memory_and_is_503_when_memory_is_down() -> None:
    for turns, memory, status in ((None, True, 503), ([], False, 503), ([], True, 200)):
        app, _, _ = build(GatewaySettings(), turns=turns, memory=memory)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.get(f"/sessions/{SESSION}/messages")
        assert response.status_code == status
        if status == 503:
            assert response.json()["error"]["code"] == "history_unavailable"
            assert "retry-after" in response.headers
        else:
            assert response.json() == {"session_id": SESSION, "messages": [], "next_cursor": None}
            assert response.headers["cache-control"] == "no-store"


async def test_cancel_publishes_a_cancel_request_for_the_session(gateway: Gateway) -> None:
    by_body = await gateway.client.post("/chat/m1/cancel", json={"session_id": SESSION})
    by_query = await gateway.client.post("/chat/m2/cancel", params={"session_id": SESSION})
    missing = await gateway.client.post("/chat/m3/cancel")
    conflicting = await gateway.client.post(
        "/chat/m4/cancel", params={"session_id": SESSION}, json={"session_id": "other-session"}
    )

    assert by_body.status_code == by_query.status_code == 202
    assert by_body.json() == {"session_id": SESSION, "message_id": "m1", "status": "cancelling"}
    assert missing.status_code == conflicting.status_code == 422
    sent = [message for message, _ in gateway.publisher.sent]
    assert all(isinstance(message, CancelRequest) for message in sent)
    assert [(m.message_id, m.session_id) for m in sent] == [("m1", SESSION), ("m2", SESSION)]


async def test_an_id_older_than_the_buffer_gets_reset_then_the_answer_from_history(
    gateway: Gateway,
) -> None:
    params = {"session_id": SESSION, "message_id": "m1"}
    response = await gateway.client.get("/stream", params=params, headers={"Last-Event-ID": "0-7"})

    events = parse_sse(response.text)
    assert [e.event for e in events] == ["reset", "done"]
    assert events[1].data["text"] == "Hello from history."
    assert events[1].data["from_history"] is True


async def test_an_unfinished_answer_not_in_the_buffer_resets_then_streams_what_arrives(
    gateway: Gateway,
) -> None:
    positions = Positions()
    for _ in range(5):
        positions.wrap(start("older"))  # offsets the client saw long ago, now evicted
    gateway.hub.dispatch(positions.wrap(start("m9")))
    gateway.hub.dispatch(positions.wrap(delta(0, "Par", "m9")))
    params = {"session_id": "session-0001", "message_id": "m9", "last_event_id": "0-2"}
    request = asyncio.create_task(gateway.client.get("/stream", params=params))
    await wait_until(lambda: gateway.hub.subscriber_count() == 1)
    gateway.hub.dispatch(positions.wrap(delta(1, "tial.", "m9")))
    gateway.hub.dispatch(positions.wrap(done("Partial.", "m9")))
    response = await asyncio.wait_for(request, 3)

    events = parse_sse(response.text)
    assert [e.event for e in events] == ["reset", "start", "token", "token", "done"]
    assert events[-1].data["text"] == "Partial."


async def test_no_answer_in_time_is_an_error_with_reason_timeout(gateway: Gateway) -> None:
    params = {"session_id": SESSION, "message_id": "never-answered"}
    started = time.monotonic()
    response = await gateway.client.get("/stream", params=params)

    events = parse_sse(response.text)
    assert [e.event for e in events] == ["error"]
    assert events[0].data["reason"] == "timeout"
    assert events[0].data["message_id"] == "never-answered"
    assert time.monotonic() - started < 3


async def test_an_answer_that_stops_arriving_ends_with_reason_timeout() -> None:
    # A broker without durable storage that restarts can lose an answer's end: the stream
    # must still end, once nothing of the answer came for GATEWAY_ANSWER_IDLE_TIMEOUT_S.
    app, _, hub = build(GatewaySettings(answer_idle_timeout_s=0.4), memory=False)
    positions = Positions()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        params = {"session_id": SESSION, "message_id": "m5"}
        request = asyncio.create_task(client.get("/stream", params=params))
        await wait_until(lambda: hub.subscriber_count() == 1)
        hub.dispatch(positions.wrap(start("m5", session_id=SESSION)))
        hub.dispatch(positions.wrap(delta(0, "Half", "m5", session_id=SESSION)))
        started = time.monotonic()
        response = await asyncio.wait_for(request, 3)

    events = parse_sse(response.text)
    assert [e.event for e in events] == ["start", "token", "error"]
    assert events[-1].data["reason"] == "timeout"
    assert events[-1].data["code"] == "answer_stalled"
    assert 0.3 < time.monotonic() - started < 3


async def test_a_broker_outage_ends_waiting_streams_with_reason_unavailable() -> None:
    app, _, _ = build(
        GatewaySettings(unavailable_after_s=5), broker_down_for=lambda: 6.0, memory=False
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/stream", params={"session_id": SESSION})

    events = parse_sse(response.text)
    assert [e.event for e in events] == ["error"]
    assert events[0].data["reason"] == "unavailable"


async def test_open_streams_per_caller_are_capped() -> None:
    app, _, hub = build(GatewaySettings(max_streams_per_subject=1, sse_ping_s=1), memory=False)
    server = HttpServer(app, "127.0.0.1", 0, name="gateway-cap-test")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            params = {"session_id": SESSION}
            async with client.stream("GET", "/stream", params=params) as first:
                assert first.status_code == 200
                second = await client.get("/stream", params=params)
                assert second.status_code == 429
                assert second.json()["error"]["code"] == "too_many_streams"
            await wait_until(lambda: hub.subscriber_count() == 0)
            async with client.stream("GET", "/stream", params=params) as again:
                assert again.status_code == 200
    finally:
        hub.close()
        await server.stop()


async def test_cors_is_closed_by_default_and_opens_for_listed_origins(gateway: Gateway) -> None:
    origin = {"Origin": "https://shop.example"}
    closed = await gateway.client.get("/health", headers=origin)
    assert "access-control-allow-origin" not in closed.headers

    app, _, _ = build(GatewaySettings(cors_origins=["https://shop.example"]), memory=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        allowed = await client.get("/health", headers=origin)
        preflight = await client.options(
            "/chat",
            headers={**origin, "Access-Control-Request-Method": "POST"},
        )
        other = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert preflight.status_code == 200
    assert "access-control-allow-origin" not in other.headers


async def test_every_answer_carries_security_headers(gateway: Gateway) -> None:
    for response in (
        await gateway.client.get("/health"),
        await gateway.client.get("/nowhere"),
        await gateway.client.post("/chat", content=b"x", headers={"content-type": "text/plain"}),
    ):
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "param"),
    [
        (b"{", "application/json", 400, None),
        (b'{"model": "t", "messages": []}', "application/json", 400, "messages"),
        (
            b'{"model": "t", "messages": [{"role": "user", "content": " "}]}',
            "application/json",
            400,
            "messages",
        ),
        (
            b'{"model": "t", "messages": [{"role": "user", "content": "hi"}], "n": 2}',
            "application/json",
            400,
            "n",
        ),
        (
            b'{"model": "t", "messages": [{"role": "user", "content": "hi"}]}',
            "text/plain",
            415,
            None,
        ),
        (
            b'{"model": "t", "messages": [{"role": "user", "content": "' + b"x" * 9000 + b'"}]}',
            "application/json",
            413,
            None,
        ),
    ],
)
async def test_openai_errors_use_the_openai_shape(
    gateway: Gateway, content: bytes, content_type: str, status: int, param: str | None
) -> None:
    response = await gateway.client.post(
        "/v1/chat/completions", content=content, headers={"content-type": content_type}
    )

    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert gateway.publisher.sent == []
