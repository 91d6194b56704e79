"""The memory worker against the real broker and Qdrant: local mode on disk, and a Qdrant
server (QDRANT_URL, compose's image in a container) where a Docker engine runs.

Each test publishes events the way the gateway and the responder do, runs MemoryService,
waits for its `memory.stored` events, then stops it and opens the storage directly, which in
local mode also proves the worker released the folder's lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from qdrant_client import QdrantClient

from tests.containers import qdrant_container
from tidings.common.events import (
    Event,
    MemoryStored,
    ResponseDelta,
    ResponseDone,
    ResponseStart,
    UserMessage,
    new_id,
    parse_event,
)
from tidings.common.kafka import ensure_topics, kafka_consumer, kafka_producer, publish
from tidings.common.memory_api import Context, SessionMessages
from tidings.common.settings import KafkaSettings, QdrantSettings
from tidings.memory.embedder import Embedder
from tidings.memory.service import MemoryService
from tidings.memory.settings import MemorySettings
from tidings.memory.turns import turn_point_id

pytestmark = pytest.mark.integration

QUESTION = "Has my order 1234 shipped yet?"
ANSWER = "Order 1234 shipped yesterday and should arrive on Friday."


@pytest.fixture(scope="module")
def qdrant_server() -> Iterator[str]:
    """A Qdrant server in a container (skips without a Docker engine)."""
    with qdrant_container() as url:
        yield url


@pytest.fixture(params=["local", "server"])
def qdrant_settings(request: pytest.FixtureRequest, tmp_path: Path) -> QdrantSettings:
    """Qdrant local mode in a folder, or the server path (QDRANT_URL) in a container."""
    collection = f"test_memory_{new_id()}"
    if request.param == "server":
        return QdrantSettings(url=request.getfixturevalue("qdrant_server"), collection=collection)
    return QdrantSettings(path=tmp_path / "qdrant", collection=collection)


@pytest.fixture
def settings(kafka_settings: KafkaSettings, qdrant_settings: QdrantSettings) -> MemorySettings:
    return MemorySettings(
        host="127.0.0.1",
        port=0,
        group_id=f"{kafka_settings.topic_prefix}memory",
        batch_wait_ms=50,
        kafka=kafka_settings,
        qdrant=qdrant_settings,
    )


@asynccontextmanager
async def events_of(settings: KafkaSettings, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    async with kafka_consumer(settings, topic, group_id=None, name="test-reader") as consumer:
        yield consumer


async def read(consumer: AIOKafkaConsumer, count: int, timeout_s: float = 60) -> list[Any]:
    """The next `count` records of the consumer's topic (fails after `timeout_s`)."""
    records: list[Any] = []

    async def collect() -> None:
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)

    await asyncio.wait_for(collect(), timeout_s)
    return records


async def send(settings: KafkaSettings, *items: tuple[str, Event | bytes]) -> None:
    async with kafka_producer(settings, name="test") as producer:
        for topic, event in items:
            if isinstance(event, Event):
                await publish(producer, topic, event, key=event.session_id)  # type: ignore[attr-defined]
            else:
                await producer.send_and_wait(topic, event, key=b"poison")


def exchange(session_id: str, message_id: str, user: str | None = "alice") -> list[Any]:
    """A question and the responder's stream of events answering it."""
    attempt = new_id()
    return [
        UserMessage(message_id=message_id, session_id=session_id, user=user, text=QUESTION),
        ResponseStart(message_id=message_id, session_id=session_id, attempt=attempt),
        ResponseDelta(
            message_id=message_id, session_id=session_id, attempt=attempt, seq=0, text="Order"
        ),
        ResponseDone(
            message_id=message_id,
            session_id=session_id,
            attempt=attempt,
            text=ANSWER,
            source="llm",
            model="smollm2-135m-instruct",
        ),
    ]


def routed(settings: KafkaSettings, events: list[Any]) -> list[tuple[str, Event]]:
    return [
        (
            settings.user_messages_topic
            if isinstance(event, UserMessage)
            else settings.model_responses_topic,
            event,
        )
        for event in events
    ]


def stored_points(settings: MemorySettings) -> list[Any]:
    qdrant = settings.qdrant
    client = QdrantClient(url=qdrant.url) if qdrant.url else QdrantClient(path=str(qdrant.path))
    try:
        points, _ = client.scroll(settings.qdrant.collection, limit=100, with_vectors=True)
    finally:
        client.close()
    return points


async def test_question_and_answer_are_stored_once_even_when_redelivered(
    settings: MemorySettings, embedder: Embedder
) -> None:
    kafka = settings.kafka
    session_id, message_id = new_id(), new_id()
    await ensure_topics(kafka)
    await send(kafka, *routed(kafka, exchange(session_id, message_id)))

    async with (
        events_of(kafka, kafka.memory_events_topic) as memory_events,
        MemoryService(settings, embedder=embedder) as service,
    ):
        first = [parse_event(r.value) for r in await read(memory_events, 2)]
        # The same events again, as after a crash before the commit (a new attempt id
        # for the answer, as the responder would produce).
        await send(kafka, *routed(kafka, exchange(session_id, message_id)))
        again = [parse_event(r.value) for r in await read(memory_events, 2)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
            ready = await http.get("/ready")
            metrics = (await http.get("/metrics")).text

    expected_ids = {
        "user": turn_point_id(message_id, "user"),
        "assistant": turn_point_id(message_id, "assistant"),
    }
    for events in (first, again):
        assert all(isinstance(e, MemoryStored) for e in events)
        assert {e.role: e.point_id for e in events} == expected_ids
        assert {(e.session_id, e.message_id, e.collection) for e in events} == {
            (session_id, message_id, settings.qdrant.collection)
        }
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"consumer": True, "qdrant": True}
    assert 'tidings_memory_turns_stored_total{role="assistant"}' in metrics

    points = stored_points(settings)
    assert len(points) == 2  # redelivery overwrote, it did not duplicate
    by_role = {p.payload["role"]: p for p in points}
    assert {role: str(p.id) for role, p in by_role.items()} == expected_ids
    question, answer = by_role["user"].payload, by_role["assistant"].payload
    assert question["text"] == QUESTION and answer["text"] == ANSWER
    assert question["user"] == answer["user"] == "alice"
    assert question["session_id"] == answer["session_id"] == session_id
    assert (answer["source"], answer["model"]) == ("llm", "smollm2-135m-instruct")
    assert answer["attempt"]
    assert question["ts_epoch"] < answer["ts_epoch"]
    assert all(len(p.vector) == embedder.dimension for p in points)


async def test_consumed_records_are_committed_so_a_restart_does_not_redo_them(
    settings: MemorySettings, embedder: Embedder
) -> None:
    kafka = settings.kafka
    session_id = new_id()
    await ensure_topics(kafka)
    await send(kafka, *routed(kafka, exchange(session_id, new_id())))

    async with (
        events_of(kafka, kafka.memory_events_topic) as memory_events,
        MemoryService(settings, embedder=embedder),
    ):
        await read(memory_events, 2)

    # After a clean stop the group's committed offsets cover every record it consumed
    # (stored, skipped delta and start events alike): a restarted worker starts after them.
    async with kafka_consumer(kafka, group_id=settings.group_id, name="test-offsets") as inspector:
        for topic in (kafka.user_messages_topic, kafka.model_responses_topic):
            partitions = [TopicPartition(topic, p) for p in range(kafka.topic_partitions)]
            ends = await inspector.end_offsets(partitions)
            for tp in partitions:
                assert (await inspector.committed(tp) or 0) == ends[tp], tp


async def test_a_poison_record_is_dead_lettered_and_the_worker_keeps_going(
    settings: MemorySettings, embedder: Embedder
) -> None:
    kafka = settings.kafka
    session_id, message_id = new_id(), new_id()
    await ensure_topics(kafka)
    await send(
        kafka,
        (kafka.user_messages_topic, b'{"schema": "user_message.v1", "text": '),
        *routed(kafka, exchange(session_id, message_id)),
    )

    async with (
        events_of(kafka, kafka.dlq_topic(kafka.user_messages_topic)) as dead_letters,
        events_of(kafka, kafka.memory_events_topic) as memory_events,
        MemoryService(settings, embedder=embedder),
    ):
        [dead] = await read(dead_letters, 1)
        stored = [parse_event(r.value) for r in await read(memory_events, 2)]

    assert dead.value == b'{"schema": "user_message.v1", "text": '
    headers = dict(dead.headers)
    assert headers["dlq.reason"].startswith(b"invalid event")
    assert headers["dlq.source.topic"] == kafka.user_messages_topic.encode()
    assert headers["dlq.consumer.group"] == settings.group_id.encode()
    assert {(e.message_id, e.role) for e in stored} == {
        (message_id, "user"),
        (message_id, "assistant"),
    }
    assert len(stored_points(settings)) == 2


async def test_context_over_http_keeps_users_apart_and_grounds_in_the_sample_kb(
    settings: MemorySettings, embedder: Embedder
) -> None:
    kafka = settings.kafka
    settings = settings.model_copy(update={"knowledge_sample": True})
    alice_old, alice_now, bob = new_id(), new_id(), new_id()
    secret = "My gift card code is ZX-4242, please remember it."
    await ensure_topics(kafka)
    await send(
        kafka,
        (
            kafka.user_messages_topic,
            UserMessage(message_id=new_id(), session_id=alice_old, user="alice", text=secret),
        ),
        (
            kafka.user_messages_topic,
            UserMessage(
                message_id=new_id(), session_id=bob, user="bob", text="What is my gift card code?"
            ),
        ),
        (
            kafka.user_messages_topic,
            UserMessage(
                message_id=new_id(), session_id=alice_now, user="alice", text="Hello again"
            ),
        ),
    )

    async with (
        events_of(kafka, kafka.memory_events_topic) as memory_events,
        MemoryService(settings, embedder=embedder) as service,
    ):
        await read(memory_events, 3)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}") as http:
            question = {"query": "What is my gift card code?"}
            for_alice = Context.model_validate_json(
                (
                    await http.get(
                        "/context", params={**question, "session_id": alice_now, "user": "alice"}
                    )
                ).content
            )
            for_bob = Context.model_validate_json(
                (
                    await http.get(
                        "/context", params={**question, "session_id": bob, "user": "bob"}
                    )
                ).content
            )
            canada = Context.model_validate_json(
                (
                    await http.get(
                        "/context",
                        params={"session_id": new_id(), "query": "do you ship to Canada?"},
                    )
                ).content
            )
            bobs_view_of_alice = await http.get(
                f"/sessions/{alice_old}/messages", params={"user": "bob"}
            )
            alices_history = SessionMessages.model_validate_json(
                (
                    await http.get(f"/sessions/{alice_old}/messages", params={"user": "alice"})
                ).content
            )

    # Alice's earlier session is related to her question; Bob, asking the very same thing,
    # never sees it.
    assert secret in [t.text for t in for_alice.related]
    bob_texts = [t.text for t in (*for_bob.recent, *for_bob.related)]
    assert bob_texts == ["What is my gift card code?"]
    assert bobs_view_of_alice.status_code == 404
    assert [m.text for m in alices_history.messages] == [secret]
    # The sample knowledge base was loaded at start and answers the Canada question.
    assert canada.knowledge[0].title == (
        "Shipping and delivery > International shipping > Shipping to Canada"
    )
    assert canada.knowledge[0].url == "https://bookstore.example/help/shipping"
    assert canada.recent == [] and canada.related == []
