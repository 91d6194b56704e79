"""The worker's loop with the broker replaced by in-memory fakes and Qdrant in local mode.

What matters to users: every turn is stored, nothing is committed before it is stored,
bad records go to the dead-letter topic without stopping the worker, and a batch that
cannot be stored is never committed (so it comes back).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from qdrant_client.http.exceptions import ResponseHandlingException

from tidings.common.events import (
    CancelRequest,
    Event,
    ResponseDelta,
    ResponseDone,
    UserMessage,
    parse_event,
)
from tidings.common.settings import KafkaSettings, QdrantSettings
from tidings.memory.batch import Record
from tidings.memory.collection import ModelStamp
from tidings.memory.consumer import MemoryWorker
from tidings.memory.settings import MemorySettings
from tidings.memory.store import TurnStore, open_store
from tidings.memory.turns import turn_point_id

KAFKA = KafkaSettings(topic_prefix="w-")
USERS = TopicPartition(KAFKA.user_messages_topic, 0)
ANSWERS = TopicPartition(KAFKA.model_responses_topic, 1)
Fetch = dict[TopicPartition, list[Record]]


class FakeEmbedder:
    """Deterministic 4-d vectors; `delay_s` makes embedding slow enough to overlap writes."""

    dimension = 4
    name = "fake"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        time.sleep(self.delay_s)
        return [[1.0 + b / 255 for b in hashlib.sha256(t.encode()).digest()[:4]] for t in texts]


class FakeConsumer:
    """Hands out scripted fetches, then nothing; records each commit and what was stored."""

    def __init__(self, store: TurnStore, fetches: list[Fetch]) -> None:
        self._store = store
        self._fetches = deque(fetches)
        self.commits: list[tuple[dict[TopicPartition, int], int]] = []
        self.fetched_all = asyncio.Event()

    async def getmany(self, *_: Any, timeout_ms: int = 0, max_records: int | None = None) -> Fetch:
        if self._fetches:
            return self._fetches.popleft()
        self.fetched_all.set()
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append((dict(offsets), await self._store.count()))


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, value, key, list(headers or [])))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> None:
        await (await self.send(*args, **kwargs))

    def events(self, topic: str) -> list[Event]:
        return [parse_event(value) for t, value, _, _ in self.sent if t == topic]


class Offsets:
    """Broker-like offsets per partition."""

    def __init__(self) -> None:
        self.next: dict[TopicPartition, int] = {}

    def record(self, tp: TopicPartition, value: bytes | Event) -> Record:
        offset = self.next.get(tp, 0)
        self.next[tp] = offset + 1
        raw = value.to_bytes() if isinstance(value, Event) else value
        return ConsumerRecord(
            tp.topic, tp.partition, offset, 0, 0, b"s1", raw, None, 2, len(raw), []
        )


def question(message_id: str, text: str = "Where is my order?") -> UserMessage:
    return UserMessage(message_id=message_id, session_id="s1", user="alice", text=text)


def answer(message_id: str, text: str = "It shipped today.") -> ResponseDone:
    return ResponseDone(
        message_id=message_id, session_id="s1", attempt="a1", text=text, source="tool"
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TurnStore]:
    async with open_store(
        QdrantSettings(path=tmp_path / "q", collection="c"), ModelStamp("fake", 4)
    ) as store:
        yield store


def make_worker(
    store: TurnStore, fetches: list[Fetch], *, embedder: FakeEmbedder | None = None
) -> tuple[MemoryWorker, FakeConsumer, FakeProducer]:
    consumer, producer = FakeConsumer(store, fetches), FakeProducer()
    settings = MemorySettings(kafka=KAFKA, batch_wait_ms=5, retry_backoff_s=0.001)
    worker = MemoryWorker(
        settings,
        consumer=consumer,
        producer=producer,
        store=store,
        embedder=embedder or FakeEmbedder(),
    )
    return worker, consumer, producer


async def run_until_fetched(worker: MemoryWorker, consumer: FakeConsumer) -> None:
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(consumer.fetched_all.wait(), 10)
    worker.request_stop()
    await asyncio.wait_for(task, 10)


async def test_batches_are_stored_announced_and_then_committed_in_fetch_order(
    store: TurnStore,
) -> None:
    log = Offsets()
    fetches: list[Fetch] = [
        {
            USERS: [log.record(USERS, question("m1"))],
            ANSWERS: [
                log.record(
                    ANSWERS,
                    ResponseDelta(message_id="m1", session_id="s1", attempt="a1", seq=0, text="I"),
                )
            ],
        },
        {ANSWERS: [log.record(ANSWERS, answer("m1"))]},
        {USERS: [log.record(USERS, question("m2", "Can I pay by card?"))]},
    ]
    # Slow embedding: batch N+1 is being embedded while batch N is written.
    worker, consumer, producer = make_worker(store, fetches, embedder=FakeEmbedder(0.05))

    await run_until_fetched(worker, consumer)

    assert consumer.commits == [
        ({USERS: 1, ANSWERS: 1}, 1),  # committed with the question stored, delta skipped
        ({ANSWERS: 2}, 2),
        ({USERS: 2}, 3),
    ]
    stored = producer.events(KAFKA.memory_events_topic)
    assert [(e.message_id, e.role, e.point_id) for e in stored] == [  # type: ignore[attr-defined]
        ("m1", "user", turn_point_id("m1", "user")),
        ("m1", "assistant", turn_point_id("m1", "assistant")),
        ("m2", "user", turn_point_id("m2", "user")),
    ]
    assert all(key == b"s1" for _, _, key, _ in producer.sent)
    turns = await store.session_turns("s1")
    assert [(t.role, t.text, t.user) for t in turns] == [
        ("user", "Where is my order?", "alice"),
        ("assistant", "It shipped today.", "alice"),  # linked to the earlier question
        ("user", "Can I pay by card?", "alice"),
    ]


async def test_a_bad_record_is_dead_lettered_and_the_worker_keeps_going(
    store: TurnStore,
) -> None:
    log = Offsets()
    fetches: list[Fetch] = [
        {USERS: [log.record(USERS, b"{oops"), log.record(USERS, question("m1"))]},
    ]
    worker, consumer, producer = make_worker(store, fetches)

    await run_until_fetched(worker, consumer)

    [(topic, value, key, headers)] = [s for s in producer.sent if s[0].endswith(".dlq")]
    assert topic == f"{KAFKA.user_messages_topic}.dlq"
    assert (value, key) == (b"{oops", b"s1")
    assert dict(headers)["dlq.reason"].startswith(b"invalid event")
    assert [t.message_id for t in await store.session_turns("s1")] == ["m1"]
    assert consumer.commits == [({USERS: 2}, 1)]


async def test_a_batch_that_cannot_be_stored_is_not_committed(
    store: TurnStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Offsets()
    fetches: list[Fetch] = [
        {USERS: [log.record(USERS, question("m1"))]},
        {USERS: [log.record(USERS, question("m2"))]},
    ]
    worker, consumer, producer = make_worker(store, fetches)
    real_upsert = store.upsert

    async def upsert_fails_second_time(turns: Any, vectors: Any) -> None:
        if any(t.message_id == "m2" for t in turns):
            raise ValueError("Qdrant rejected the points")
        await real_upsert(turns, vectors)

    monkeypatch.setattr(store, "upsert", upsert_fails_second_time)

    with pytest.raises(ValueError, match="rejected"):
        await asyncio.wait_for(worker.run(), 10)

    assert consumer.commits == [({USERS: 1}, 1)]  # m2 stays uncommitted: it is fetched again
    assert [e.message_id for e in producer.events(KAFKA.memory_events_topic)] == ["m1"]  # type: ignore[attr-defined]


async def test_a_transient_qdrant_failure_is_retried_before_committing(
    store: TurnStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = Offsets()
    worker, consumer, _ = make_worker(store, [{USERS: [log.record(USERS, question("m1"))]}])
    real_upsert = store.upsert
    failures = [ResponseHandlingException(ConnectionError("qdrant restarting"))]

    async def flaky_upsert(turns: Any, vectors: Any) -> None:
        if failures:
            raise failures.pop()
        await real_upsert(turns, vectors)

    monkeypatch.setattr(store, "upsert", flaky_upsert)

    await run_until_fetched(worker, consumer)

    assert failures == []
    assert consumer.commits == [({USERS: 1}, 1)]


async def test_stopping_finishes_and_commits_the_batch_already_fetched(store: TurnStore) -> None:
    log = Offsets()
    fetch = {USERS: [log.record(USERS, question("m1"))]}
    worker, consumer, _ = make_worker(store, [], embedder=FakeEmbedder(0.05))

    async def fetch_then_stop(*_: Any, **__: Any) -> Fetch:
        worker.request_stop()  # SIGTERM arrives while this batch is being fetched
        return fetch

    consumer.getmany = fetch_then_stop  # type: ignore[method-assign]

    await asyncio.wait_for(worker.run(), 10)

    assert consumer.commits == [({USERS: 1}, 1)]


async def test_a_cancel_request_is_skipped_and_committed_not_dead_lettered(
    store: TurnStore,
) -> None:
    log = Offsets()
    cancel = CancelRequest(message_id="m1", session_id="s1", user="alice")
    fetches: list[Fetch] = [
        {USERS: [log.record(USERS, question("m1")), log.record(USERS, cancel)]},
    ]
    worker, consumer, producer = make_worker(store, fetches)

    await run_until_fetched(worker, consumer)

    assert not [s for s in producer.sent if s[0].endswith(".dlq")]
    assert consumer.commits == [({USERS: 2}, 1)]  # both records passed, one turn stored
    assert [t.message_id for t in await store.session_turns("s1")] == ["m1"]
