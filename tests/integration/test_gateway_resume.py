"""Streams that survive: two gateway replicas on one broker, resumed with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from test_gateway import answer_events, publish_answer, read_sse, wait_until

from tidings.common.kafka import ensure_topics, kafka_producer
from tidings.common.settings import KafkaSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SseEvent = tuple[str, dict[str, Any], str]


class Replica:
    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10)


@pytest.fixture
async def replicas(kafka_settings: KafkaSettings) -> AsyncIterator[tuple[Replica, Replica]]:
    settings = GatewaySettings(host="127.0.0.1", port=0, kafka=kafka_settings, memory={"url": ""})
    async with AsyncExitStack() as stack:
        a = Replica(await stack.enter_async_context(GatewayService(settings)))
        b = Replica(await stack.enter_async_context(GatewayService(settings)))
        stack.push_async_callback(a.client.aclose)
        stack.push_async_callback(b.client.aclose)
        yield a, b


@pytest.fixture
async def responder(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(kafka_settings)  # Kafka, as compose runs it, creates no topic itself
    async with kafka_producer(kafka_settings, name="test-responder") as producer:
        yield producer


async def read_until_tokens(response: httpx.Response, count: int) -> list[SseEvent]:
    """Events until `count` tokens arrived (then the caller cuts the connection)."""
    events: list[SseEvent] = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                events.append((fields["event"], json.loads(fields["data"]), fields.get("id", "")))
                if sum(name == "token" for name, _, _ in events) == count:
                    return events
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    raise AssertionError(f"stream ended after {events}")


def tokens(events: list[SseEvent]) -> list[str]:
    return [data["delta"] for name, data, _ in events if name == "token"]


async def test_post_through_one_replica_stream_through_the_other(
    replicas: tuple[Replica, Replica], responder: AIOKafkaProducer, kafka_settings: KafkaSettings
) -> None:
    a, b = replicas
    accepted = (await a.client.post("/chat", json={"message": "hello"})).json()
    session_id, message_id = accepted["session_id"], accepted["message_id"]

    async with b.client.stream("GET", accepted["stream_url"]) as stream:
        await wait_until(lambda: b.service.hub.subscriber_count(session_id) == 1)
        chunks = ["Our ", "shop ", "opens ", "at nine."]
        await publish_answer(
            responder, kafka_settings, answer_events(session_id, message_id, chunks), session_id
        )
        received = await asyncio.wait_for(read_sse(stream), 10)

    assert [name for name, _, _ in received] == ["start", *["token"] * 4, "done"]
    assert "".join(tokens(received)) == received[-1][1]["text"] == "Our shop opens at nine."


@pytest.mark.parametrize("how", ["header", "query"])
async def test_a_stream_cut_on_one_replica_resumes_on_the_other_exactly_once(
    replicas: tuple[Replica, Replica],
    responder: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    how: str,
) -> None:
    a, b = replicas
    accepted = (await a.client.post("/chat", json={"message": "tell me"})).json()
    session_id, message_id = accepted["session_id"], accepted["message_id"]
    chunks = ["One ", "two ", "three ", "four ", "five."]
    events = answer_events(session_id, message_id, chunks)
    first, rest = events[:3], events[3:]  # start + two tokens, then the others and done

    async with a.client.stream("GET", accepted["stream_url"]) as stream:
        await wait_until(lambda: a.service.hub.subscriber_count(session_id) == 1)
        await publish_answer(responder, kafka_settings, first, session_id)
        before = await asyncio.wait_for(read_until_tokens(stream, 2), 10)
    last_id = before[-1][2]
    # The rest of the answer is produced while the client is disconnected.
    await publish_answer(responder, kafka_settings, rest, session_id)

    headers = {"Last-Event-ID": last_id} if how == "header" else {}
    url = accepted["stream_url"] + (f"&last_event_id={last_id}" if how == "query" else "")
    async with b.client.stream("GET", url, headers=headers) as stream:
        after = await asyncio.wait_for(read_sse(stream), 10)

    assert [name for name, _, _ in after] == ["token", "token", "token", "done"]
    text = "".join(tokens(before) + tokens(after))
    assert text == after[-1][1]["text"] == "".join(chunks)
    ids = [event_id for _, _, event_id in before + after]
    assert len(ids) == len(set(ids))


async def test_a_replica_started_mid_answer_serves_and_resumes_it(
    kafka_settings: KafkaSettings, responder: AIOKafkaProducer
) -> None:
    settings = GatewaySettings(host="127.0.0.1", port=0, kafka=kafka_settings, memory={"url": ""})
    session_id, message_id = "late-replica-session", "late-message"
    events = answer_events(session_id, message_id, ["Begun ", "before ", "start."])
    await publish_answer(responder, kafka_settings, events[:2], session_id)

    async with GatewayService(settings) as late:
        replica = Replica(late)
        async with replica.client:
            await wait_until(lambda: len(late.hub.snapshot(session_id)) == 2)
            await publish_answer(responder, kafka_settings, events[2:], session_id)
            params = {"session_id": session_id, "message_id": message_id}
            async with replica.client.stream("GET", "/stream", params=params) as stream:
                received = await asyncio.wait_for(read_sse(stream), 10)

    assert [name for name, _, _ in received] == ["start", "token", "token", "token", "done"]
    assert "".join(tokens(received)) == "Begun before start."


async def test_an_answer_that_never_starts_ends_with_a_timeout_error(
    kafka_settings: KafkaSettings,
) -> None:
    settings = GatewaySettings(
        host="127.0.0.1", port=0, kafka=kafka_settings, answer_start_timeout_s=1.0
    )
    async with GatewayService(settings) as service:
        replica = Replica(service)
        async with replica.client:
            accepted = (await replica.client.post("/chat", json={"message": "anyone?"})).json()
            async with replica.client.stream("GET", accepted["stream_url"]) as stream:
                received = await asyncio.wait_for(read_sse(stream), 10)

    [(name, data, _)] = received
    assert name == "error"
    assert data["reason"] == "timeout"
    assert data["message_id"] == accepted["message_id"]


async def test_post_with_accept_event_stream_streams_the_answer_in_the_response(
    replicas: tuple[Replica, Replica], responder: AIOKafkaProducer, kafka_settings: KafkaSettings
) -> None:
    a, _ = replicas

    async with a.client.stream(
        "POST",
        "/chat",
        json={"message": "stream it"},
        headers={"Accept": "text/event-stream"},
    ) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-store"
        message_id = stream.headers["x-message-id"]
        session_id = stream.headers["x-session-id"]
        events = answer_events(session_id, message_id, ["Right ", "away."])
        await publish_answer(responder, kafka_settings, events, session_id)
        received = await asyncio.wait_for(read_sse(stream), 10)

    assert [name for name, _, _ in received] == ["start", "token", "token", "done"]
    assert received[-1][1]["text"] == "Right away."
