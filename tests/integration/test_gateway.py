"""The gateway against a real broker, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from tidings.cli.infra import InfraError, free_port, tansu_command, wait_for_port
from tidings.common.events import (
    ResponseDelta,
    ResponseDone,
    ResponseStart,
    new_id,
    parse_user_message,
)
from tidings.common.kafka import kafka_consumer, kafka_producer, publish
from tidings.common.settings import KafkaSettings
from tidings.common.tracing import trace_id_of, traceparent_from_headers
from tidings.gateway.replay import AnswerEvent
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


@dataclass
class Running:
    service: GatewayService
    client: httpx.AsyncClient
    kafka: KafkaSettings


@pytest.fixture
async def gateway(kafka_settings: KafkaSettings) -> AsyncIterator[Running]:
    settings = GatewaySettings(host="127.0.0.1", port=0, kafka=kafka_settings)
    async with (
        GatewayService(settings) as service,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10) as client,
    ):
        yield Running(service, client, kafka_settings)


@pytest.fixture
async def responses(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    async with kafka_producer(kafka_settings, name="test-responder") as producer:
        yield producer


def answer_events(session_id: str, message_id: str, chunks: list[str]) -> list[AnswerEvent]:
    ids = {"session_id": session_id, "message_id": message_id, "attempt": "att-1"}
    start = ResponseStart.model_validate({**ids, "source": "llm", "model": "smollm2"})
    deltas = [
        ResponseDelta.model_validate({**ids, "seq": seq, "text": text})
        for seq, text in enumerate(chunks)
    ]
    done = ResponseDone.model_validate(
        {**ids, "text": "".join(chunks), "source": "llm", "model": "smollm2"}
    )
    return [start, *deltas, done]


async def publish_answer(
    producer: AIOKafkaProducer, kafka: KafkaSettings, events: list[AnswerEvent], session_id: str
) -> None:
    for event in events:
        await publish(producer, kafka.model_responses_topic, event, key=session_id)


async def read_sse(response: httpx.Response) -> list[tuple[str, dict[str, Any], str]]:
    """(event, data, id) until the server ends the stream."""
    events = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                events.append((fields["event"], json.loads(fields["data"]), fields.get("id", "")))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


async def test_chat_publishes_the_message_keyed_by_session(gateway: Running) -> None:
    response = await gateway.client.post(
        "/chat",
        json={"message": "Where is order 1234?", "metadata": {"page": "/orders"}},
        headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    )

    assert response.status_code == 202
    accepted = response.json()
    kafka = gateway.kafka
    async with kafka_consumer(
        kafka, kafka.user_messages_topic, group_id=None, name="test-reader"
    ) as consumer:
        records: list[Any] = []
        async with asyncio.timeout(5):
            while not records:
                batches = await consumer.getmany(timeout_ms=200)
                records = [r for batch in batches.values() for r in batch]
    [record] = records
    assert record.key == accepted["session_id"].encode()
    message = parse_user_message(record.value)
    assert message.message_id == accepted["message_id"]
    assert message.session_id == accepted["session_id"]
    assert message.text == "Where is order 1234?"
    assert message.metadata == {"page": "/orders"}
    traceparent = traceparent_from_headers(list(record.headers))
    assert trace_id_of(traceparent) == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_stream_delivers_a_live_answer_in_order_then_ends(
    gateway: Running, responses: AIOKafkaProducer
) -> None:
    accepted = (await gateway.client.post("/chat", json={"message": "hello"})).json()
    session_id, message_id = accepted["session_id"], accepted["message_id"]

    async with gateway.client.stream("GET", accepted["stream_url"]) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-store"
        assert stream.headers["x-accel-buffering"] == "no"
        await wait_until(lambda: gateway.service.hub.subscriber_count(session_id) == 1)
        events = answer_events(session_id, message_id, ["Hello", ", ", "reader!"])
        await publish_answer(responses, gateway.kafka, events, session_id)
        received = await read_sse(stream)

    assert [name for name, _, _ in received] == ["start", "token", "token", "token", "done"]
    assert "".join(data["delta"] for name, data, _ in received if name == "token") == (
        "Hello, reader!"
    )
    assert received[-1][1]["text"] == "Hello, reader!"
    assert all(data["message_id"] == message_id for _, data, _ in received)
    ids = [event_id for _, _, event_id in received]
    partition = ids[0].split("-")[0]
    offsets = [int(event_id.split("-")[1]) for event_id in ids]
    assert all(event_id.startswith(f"{partition}-") for event_id in ids)
    assert offsets == sorted(offsets)
    await wait_until(lambda: gateway.service.hub.subscriber_count() == 0)


async def test_a_stream_opened_after_the_answer_replays_it(
    gateway: Running, responses: AIOKafkaProducer
) -> None:
    session_id, message_id = new_id(), new_id()
    # Garbage on the topic must be skipped, not stop the fan-out.
    await responses.send_and_wait(
        gateway.kafka.model_responses_topic, b"{not json", key=session_id.encode()
    )
    events = answer_events(session_id, message_id, ["Shipped ", "yesterday."])
    await publish_answer(responses, gateway.kafka, events, session_id)
    await wait_until(lambda: len(gateway.service.hub.snapshot(session_id)) == len(events))

    params = {"session_id": session_id, "message_id": message_id}
    async with gateway.client.stream("GET", "/stream", params=params) as stream:
        received = await asyncio.wait_for(read_sse(stream), 5)

    assert [name for name, _, _ in received] == ["start", "token", "token", "done"]
    assert received[-1][1]["text"] == "Shipped yesterday."


async def test_every_replica_streams_the_same_event_ids(
    gateway: Running, responses: AIOKafkaProducer
) -> None:
    settings = GatewaySettings(host="127.0.0.1", port=0, kafka=gateway.kafka)
    session_id, message_id = new_id(), new_id()
    events = answer_events(session_id, message_id, ["one ", "answer"])
    async with GatewayService(settings) as other:
        await publish_answer(responses, gateway.kafka, events, session_id)
        replicas = (gateway.service, other)
        await wait_until(
            lambda: all(len(r.hub.snapshot(session_id)) == len(events) for r in replicas)
        )
        ids = [[item.id for item in r.hub.snapshot(session_id)] for r in replicas]

    assert ids[0] == ids[1]
    assert len(set(ids[0])) == len(events)


async def test_shutdown_ends_open_streams_promptly(kafka_settings: KafkaSettings) -> None:
    settings = GatewaySettings(host="127.0.0.1", port=0, kafka=kafka_settings)
    service = GatewayService(settings)
    await service.__aenter__()
    try:
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10)
        async with client, client.stream("GET", "/stream", params={"session_id": new_id()}) as s:
            assert s.status_code == 200
            await wait_until(lambda: service.hub.subscriber_count() == 1)
            reading = asyncio.create_task(read_sse(s))
            started = asyncio.get_running_loop().time()
            await service.__aexit__(None, None, None)
            assert await asyncio.wait_for(reading, 3) == []
            assert asyncio.get_running_loop().time() - started < 3
    finally:
        await service.__aexit__(None, None, None)


async def test_bad_requests_get_json_errors(gateway: Running) -> None:
    malformed = await gateway.client.post(
        "/chat", content=b'{"message": ', headers={"content-type": "application/json"}
    )
    empty = await gateway.client.post("/chat", json={"message": "  "})

    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "invalid_json"
    assert empty.status_code == 422
    assert empty.json()["error"]["code"] == "empty_message"


async def test_ready_with_the_broker(gateway: Running) -> None:
    health = await gateway.client.get("/health")
    ready = await gateway.client.get("/ready")

    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"producer": True, "broker": True, "fanout": True}


@dataclass
class Broker:
    bootstrap: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Tansu broker of this test's own, so the test may kill it."""
    try:
        port = free_port()
        argv = tansu_command(port)
    except InfraError as exc:
        pytest.skip(f"needs the Tansu broker binary: {exc}")
    with (tmp_path / "tansu.log").open("wb") as log:
        broker = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, timeout_s=15)
            yield Broker(f"127.0.0.1:{port}", broker)
        finally:
            if broker.poll() is None:
                broker.kill()
            broker.wait()


async def test_broker_outage_is_a_quick_503_not_a_hang(
    private_broker: Broker,
) -> None:
    kafka = KafkaSettings(
        broker="tansu",  # a Tansu of the test's own (broker_compat on)
        bootstrap_servers=private_broker.bootstrap,
        topic_partitions=1,
        request_timeout_ms=1000,
    )
    settings = GatewaySettings(host="127.0.0.1", port=0, kafka=kafka, publish_timeout_s=1)
    async with (
        GatewayService(settings) as service,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10) as client,
    ):
        assert (await client.post("/chat", json={"message": "hi"})).status_code == 202
        private_broker.process.kill()
        await asyncio.to_thread(private_broker.process.wait, 10)
        await asyncio.sleep(1.1)  # past the readiness cache

        async with asyncio.timeout(4):
            response = await client.post("/chat", json={"message": "anyone there?"})
            ready = await client.get("/ready")

        assert response.status_code == 503
        assert response.json()["error"]["code"] == "broker_unavailable"
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"] is False
