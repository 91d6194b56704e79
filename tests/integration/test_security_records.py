"""What the workers do with records (real broker): a user message whose `traceparent`
header is null or not ASCII goes to the dead-letter topic with the reason and the next one
is handled, by the responder and the memory worker alike (no worker dies on a record); a
cancel stops an answer only when it names the answer's own session; a message older than
RESPONDER_MAX_MESSAGE_AGE_S is dropped and counted, not answered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.structs import ConsumerRecord
from test_responder_support import responses, send

from tidings.common.events import (
    MemoryStored,
    ResponseDelta,
    ResponseDone,
    ResponseError,
    UserMessage,
    new_id,
    parse_event,
)
from tidings.common.kafka import ensure_topics, kafka_consumer, kafka_producer
from tidings.common.memory_api import MemoryApiSettings
from tidings.common.settings import KafkaSettings, LLMSettings, QdrantSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings
from tidings.memory.embedder import Embedder
from tidings.memory.service import MemoryService
from tidings.memory.settings import MemorySettings
from tidings.responder.llm import BackendSettings
from tidings.responder.service import ResponderService
from tidings.responder.settings import ResponderSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BAD_HEADERS: list[list[tuple[str, bytes | None]]] = [
    [("traceparent", None)],
    [("traceparent", b"\xff\xfe not ascii")],
]


def echo_responder(kafka: KafkaSettings, **overrides: Any) -> ResponderSettings:
    """A responder on the echo backend, without memory, in this test's consumer group."""
    return ResponderSettings(
        **{
            "host": "127.0.0.1",
            "port": 0,
            "group_id": f"{kafka.topic_prefix}responder",
            "kafka": kafka,
            "llm": LLMSettings(llm_backend="echo"),
            "memory": MemoryApiSettings(url=""),
            **overrides,
        }
    )


async def publish_poison(kafka: KafkaSettings, session: str) -> list[int]:
    """User messages with unusable headers (valid values); their offsets."""
    await ensure_topics(kafka)
    offsets = []
    async with kafka_producer(kafka, name="test-poison") as producer:
        for headers in BAD_HEADERS:
            message = UserMessage(message_id=new_id(), session_id=session, text="hello?")
            sent = await producer.send_and_wait(
                kafka.user_messages_topic,
                message.to_bytes(),
                key=session.encode(),
                headers=headers,  # type: ignore[arg-type]
            )
            offsets.append(sent.offset)
    return offsets


async def dead_letters(kafka: KafkaSettings, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    found: list[ConsumerRecord[bytes, bytes]] = []
    topic = kafka.dlq_topic(kafka.user_messages_topic)
    async with kafka_consumer(kafka, topic, group_id=None, name="test-dlq") as dlq:
        async with asyncio.timeout(60):
            while len(found) < count:
                for records in (await dlq.getmany(timeout_ms=200)).values():
                    found.extend(records)
    return found


def reasons(records: list[ConsumerRecord[bytes, bytes]], group: str) -> list[bytes]:
    headers = [
        dict(r.headers) for r in records if dict(r.headers)["dlq.consumer.group"] == group.encode()
    ]
    return sorted(h["dlq.reason"] for h in headers)


EXPECTED = [b"invalid traceparent header: not ASCII", b"invalid traceparent header: null"]


async def test_the_responder_dead_letters_an_unusable_header_and_answers_the_next(
    kafka_settings: KafkaSettings,
) -> None:
    settings = echo_responder(kafka_settings)
    kafka = settings.kafka
    await publish_poison(kafka, "s-headers")
    async with (
        responses(kafka) as reader,
        kafka_producer(kafka, name="test") as producer,
        ResponderService(settings),
    ):
        good = await send(producer, kafka, "s-headers", "What is your return policy?")
        await reader.until_terminal(good)
        dead = await dead_letters(kafka, 2)
    assert reasons(dead, settings.group_id) == EXPECTED


async def test_the_memory_worker_dead_letters_an_unusable_header_and_stores_the_next(
    kafka_settings: KafkaSettings, tmp_path: Path, embedder: Embedder
) -> None:
    settings = MemorySettings(
        host="127.0.0.1",
        port=0,
        group_id=f"{kafka_settings.topic_prefix}memory",
        batch_wait_ms=50,
        kafka=kafka_settings,
        qdrant=QdrantSettings(path=tmp_path / "qdrant", collection="records"),
    )
    kafka = settings.kafka
    await publish_poison(kafka, "s-headers")
    good = UserMessage(message_id=new_id(), session_id="s-headers", text="still here")
    async with kafka_producer(kafka, name="test") as producer:
        await producer.send_and_wait(kafka.user_messages_topic, good.to_bytes(), key=b"s-headers")
    async with (
        kafka_consumer(kafka, kafka.memory_events_topic, group_id=None, name="t") as stored,
        MemoryService(settings, embedder=embedder),
    ):
        dead = await dead_letters(kafka, 2)
        events: list[MemoryStored] = []
        async with asyncio.timeout(60):
            while not events:
                for records in (await stored.getmany(timeout_ms=200)).values():
                    events.extend(parse_event(r.value) for r in records)  # type: ignore[misc]
    assert reasons(dead, settings.group_id) == EXPECTED
    assert [e.message_id for e in events] == [good.message_id]


async def test_a_cancel_naming_another_session_does_not_stop_the_answer(
    kafka_settings: KafkaSettings,
) -> None:
    kafka = kafka_settings
    settings = echo_responder(
        kafka,
        llm=LLMSettings(llm_backend="echo", llm_max_tokens=256),
        backends=BackendSettings(echo_tokens=24, echo_tokens_per_s=8),  # ~3 s per answer
        flush_ms=20,
    )
    gateway_settings = GatewaySettings(host="127.0.0.1", port=0, kafka=kafka, memory={"url": ""})
    async with (
        responses(kafka) as reader,
        ResponderService(settings),
        GatewayService(gateway_settings) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as http,
    ):
        victim = (await http.post("/chat", json={"message": "Tell me a long story"})).json()
        own = (await http.post("/chat", json={"message": "Tell me another story"})).json()
        started = [victim["message_id"], own["message_id"]]
        await reader.wait_for(
            lambda: all(
                any(isinstance(e, ResponseDelta) for e in reader.events.get(m, [])) for m in started
            ),
            what="both answers streaming",
        )
        # Another session names the victim's message: the gateway cannot tell, the
        # responder must.
        stranger = await http.post(
            f"/chat/{victim['message_id']}/cancel", json={"session_id": own["session_id"]}
        )
        mine = await http.post(
            f"/chat/{own['message_id']}/cancel", json={"session_id": own["session_id"]}
        )
        assert (stranger.status_code, mine.status_code) == (202, 202)
        await reader.wait_for(
            lambda: all(reader.terminal(m) for m in started), what="both answers ended"
        )

    assert isinstance(reader.terminal(victim["message_id"]), ResponseDone)
    stopped = reader.terminal(own["message_id"])
    assert isinstance(stopped, ResponseError) and stopped.reason == "cancelled"


async def test_a_message_older_than_the_configured_age_is_dropped_and_counted(
    kafka_settings: KafkaSettings,
) -> None:
    kafka = kafka_settings
    settings = echo_responder(kafka, max_message_age_s=60)
    await ensure_topics(kafka)
    stale = UserMessage(
        message_id=new_id(),
        session_id="s-backlog",
        text="What is your return policy?",
        ts=datetime.now(UTC) - timedelta(minutes=10),
    )
    async with (
        responses(kafka) as reader,
        kafka_producer(kafka, name="test") as producer,
    ):
        await producer.send_and_wait(kafka.user_messages_topic, stale.to_bytes(), key=b"s-backlog")
        async with (
            ResponderService(settings) as service,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http,
        ):
            fresh = await send(producer, kafka, "s-backlog", "What is your return policy?")
            await reader.until_terminal(fresh)
            metrics = (await http.get("/metrics")).text

    assert reader.events.get(stale.message_id) is None  # no start, no answer
    assert "tidings_responder_messages_expired_total 1.0" in metrics
