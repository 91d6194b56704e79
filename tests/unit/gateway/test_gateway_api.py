"""The HTTP API over fakes: validation, error bodies, streaming from the buffer, probes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from gateway_fakes import (
    SESSION,
    FakePublisher,
    Positions,
    broker_down,
    delta,
    done,
    parse_sse,
    start,
)

from tidings.common.tracing import trace_id_of
from tidings.gateway.app import create_app
from tidings.gateway.hub import FanoutHub
from tidings.gateway.readiness import Readiness
from tidings.gateway.replay import ReplayBuffer
from tidings.gateway.settings import GatewaySettings


@dataclass
class Checks:
    producer: bool = True
    broker: bool = True
    fanout: bool = True
    probes: int = 0

    async def probe(self) -> bool:
        self.probes += 1
        return self.broker


@dataclass
class Gateway:
    client: httpx.AsyncClient
    publisher: FakePublisher
    hub: FanoutHub
    checks: Checks


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    settings = GatewaySettings(max_message_bytes=100, max_metadata_bytes=64, sse_retry_ms=1500)
    hub = FanoutHub(
        ReplayBuffer(max_events_per_session=100, max_sessions=100, max_age_s=600),
        max_pending=100,
    )
    publisher = FakePublisher()
    checks = Checks()
    readiness = Readiness(
        producer_up=lambda: checks.producer,
        fanout_ready=lambda: checks.fanout,
        broker_probe=checks.probe,
        cache_s=60,
    )
    app = create_app(settings, publisher=publisher, hub=hub, readiness=readiness)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Gateway(client, publisher, hub, checks)


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return str(body["error"]["code"])


async def test_chat_accepts_a_message_and_publishes_it(gateway: Gateway) -> None:
    response = await gateway.client.post(
        "/chat", json={"message": "Where is my order?", "metadata": {"locale": "en"}}
    )

    assert response.status_code == 202
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["session_id"])
    assert re.fullmatch(r"[0-9a-f]{32}", body["message_id"])
    assert body["stream_url"] == (
        f"/stream?session_id={body['session_id']}&message_id={body['message_id']}"
    )
    [(message, traceparent)] = gateway.publisher.sent
    assert (message.session_id, message.message_id) == (body["session_id"], body["message_id"])
    assert message.text == "Where is my order?"
    assert message.metadata == {"locale": "en"}
    assert trace_id_of(traceparent) is not None


async def test_chat_continues_a_given_session_and_trace(gateway: Gateway) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = await gateway.client.post(
        "/chat",
        json={"message": "hello again", "session_id": "my-session_01"},
        headers={"traceparent": parent},
    )

    assert response.status_code == 202
    assert response.json()["session_id"] == "my-session_01"
    [(message, traceparent)] = gateway.publisher.sent
    assert message.session_id == "my-session_01"
    assert trace_id_of(traceparent) == "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"message": "hi"', "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        (b'{"message": "   \\n "}', "application/json", 422, "empty_message"),
        (b'{"message": ""}', "application/json", 422, "empty_message"),
        (b'{"message": "hi", "admin": true}', "application/json", 422, "invalid_request"),
        (b'{"message": 42}', "application/json", 422, "invalid_request"),
        (b'{"text": "hi"}', "application/json", 422, "invalid_request"),
        (b'["hi"]', "application/json", 422, "invalid_request"),
        (b'{"message": "hi", "metadata": "x"}', "application/json", 422, "invalid_request"),
        (b'{"message": "hi", "session_id": "a b"}', "application/json", 422, "invalid_session_id"),
        (
            b'{"message": "hi", "session_id": "short"}',
            "application/json",
            422,
            "invalid_session_id",
        ),
        (b'{"message": "hi"}', "text/plain", 415, "unsupported_media_type"),
        (b"message=hi", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ],
)
async def test_bad_requests_get_json_errors_and_publish_nothing(
    gateway: Gateway, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = await gateway.client.post(
        "/chat", content=content, headers={"content-type": content_type}
    )

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert error_code(response) == code
    assert gateway.publisher.sent == []


async def test_too_long_messages_and_metadata_get_413(gateway: Gateway) -> None:
    too_long = await gateway.client.post("/chat", json={"message": "é" * 51})
    huge_body = await gateway.client.post("/chat", json={"message": "x" * 100_000})
    big_metadata = await gateway.client.post(
        "/chat", json={"message": "hi", "metadata": {"k": "v" * 64}}
    )
    at_limit = await gateway.client.post("/chat", json={"message": "é" * 50})

    assert (too_long.status_code, error_code(too_long)) == (413, "message_too_large")
    assert (huge_body.status_code, error_code(huge_body)) == (413, "message_too_large")
    assert (big_metadata.status_code, error_code(big_metadata)) == (413, "metadata_too_large")
    assert at_limit.status_code == 202
    assert len(gateway.publisher.sent) == 1


async def test_broker_down_is_503_and_nothing_is_promised(gateway: Gateway) -> None:
    gateway.publisher.fail_with = broker_down()

    response = await gateway.client.post("/chat", json={"message": "hi"})

    assert response.status_code == 503
    assert error_code(response) == "broker_unavailable"
    assert "session_id" not in response.text


async def test_unexpected_failure_is_a_500_json_without_internals(gateway: Gateway) -> None:
    gateway.publisher.fail_with = RuntimeError("secret internal detail")

    response = await gateway.client.post("/chat", json={"message": "hi"})

    assert response.status_code == 500
    assert error_code(response) == "internal_error"
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_unknown_route_and_wrong_method_are_json(gateway: Gateway) -> None:
    missing = await gateway.client.get("/nope")
    wrong_method = await gateway.client.get("/chat")

    assert (missing.status_code, error_code(missing)) == (404, "not_found")
    assert (wrong_method.status_code, error_code(wrong_method)) == (405, "method_not_allowed")
    assert "POST" in wrong_method.headers["allow"]


async def test_stream_replays_a_finished_answer_and_ends(gateway: Gateway) -> None:
    kafka = Positions(partition=1)
    for event in [start(), delta(0, "Hel"), delta(1, "lo!"), done("Hello!")]:
        gateway.hub.dispatch(kafka.wrap(event))

    response = await gateway.client.get(
        "/stream", params={"session_id": SESSION, "message_id": "m1"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    assert "retry: 1500" in response.text
    events = parse_sse(response.text)
    assert [(e.event, e.id) for e in events] == [
        ("start", "1-0"),
        ("token", "1-1"),
        ("token", "1-2"),
        ("done", "1-3"),
    ]
    assert "".join(e.data["delta"] for e in events if e.event == "token") == "Hello!"
    assert gateway.hub.subscriber_count() == 0


@pytest.mark.parametrize(
    "params",
    [{"session_id": "bad id!"}, {}, {"session_id": SESSION, "message_id": "x" * 65}],
)
async def test_stream_rejects_malformed_ids(gateway: Gateway, params: dict[str, str]) -> None:
    response = await gateway.client.get("/stream", params=params)

    assert response.status_code == 422
    assert error_code(response) in {"invalid_session_id", "invalid_request"}
    assert gateway.hub.subscriber_count() == 0


async def test_health_and_readiness(gateway: Gateway) -> None:
    assert (await gateway.client.get("/health")).status_code == 200
    ready = await gateway.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"producer": True, "broker": True, "fanout": True}

    gateway.checks.fanout = False
    not_ready = await gateway.client.get("/ready")

    assert not_ready.status_code == 503
    assert not_ready.json()["error"]["code"] == "not_ready"
    assert not_ready.json()["checks"]["fanout"] is False
    # The broker probe result is cached: two /ready calls, one metadata request.
    assert gateway.checks.probes == 1


def accepted_total(metrics_text: str) -> float:
    match = re.search(r"^tidings_gateway_messages_accepted_total (\S+)$", metrics_text, re.M)
    assert match is not None
    return float(match.group(1))


async def test_metrics_count_requests_and_accepted_messages(gateway: Gateway) -> None:
    before = accepted_total((await gateway.client.get("/metrics")).text)
    await gateway.client.post("/chat", json={"message": "count me"})
    await gateway.client.post("/chat", json={"message": ""})
    await gateway.client.get("/nope")

    text = (await gateway.client.get("/metrics")).text

    assert accepted_total(text) == before + 1
    assert 'tidings_gateway_http_requests_total{method="POST",route="/chat",status="202"}' in text
    assert 'tidings_gateway_http_requests_total{method="POST",route="/chat",status="422"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "tidings_gateway_open_streams" in text
