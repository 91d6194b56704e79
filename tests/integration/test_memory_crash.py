"""kill -9 of the memory worker in the middle of a stream loses nothing and doubles nothing.

The worker runs as its own process (`python -m tidings.cli.main memory`), exactly as in a
container, on Qdrant local mode in a temporary folder. It is SIGKILLed while it is storing
a long stream of turns, then started again; in the end every turn is in Qdrant exactly
once: what the first process stored but had not committed is redelivered and overwrites
the same points.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from tidings.common.events import ResponseDone, UserMessage, new_id, parse_event
from tidings.common.kafka import ensure_topics, kafka_consumer, kafka_producer, publish
from tidings.common.settings import KafkaSettings
from tidings.memory.turns import turn_point_id

pytestmark = pytest.mark.integration

EXCHANGES = 300  # 600 turns
COLLECTION = "crash_memory"


def worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings.cli.main", "memory"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def publish_stream(kafka: KafkaSettings) -> set[str]:
    expected: set[str] = set()
    async with kafka_producer(kafka, name="test") as producer:
        for i in range(EXCHANGES):
            session_id, message_id = f"s{i % 17}", new_id()
            await publish(
                producer,
                kafka.user_messages_topic,
                UserMessage(
                    message_id=message_id,
                    session_id=session_id,
                    user=f"u{i % 5}",
                    text=f"Question {i}: when does order {1000 + i} arrive?",
                ),
                key=session_id,
            )
            await publish(
                producer,
                kafka.model_responses_topic,
                ResponseDone(
                    message_id=message_id,
                    session_id=session_id,
                    attempt=new_id(),
                    text=f"Order {1000 + i} arrives in {i % 7 + 1} days.",
                    source="tool",
                ),
                key=session_id,
            )
            expected |= {turn_point_id(message_id, "user"), turn_point_id(message_id, "assistant")}
    return expected


async def stored_ids(consumer: Any, seen: set[str], until: int, timeout_s: float) -> None:
    """Collect point ids from memory.stored events until `until` distinct ones were seen."""

    async def collect() -> None:
        while len(seen) < until:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.update(parse_event(r.value).point_id for r in records)

    await asyncio.wait_for(collect(), timeout_s)


def points_in(path: Path) -> list[str]:
    client = QdrantClient(path=str(path))
    try:
        ids: list[str] = []
        offset = None
        while True:
            points, offset = client.scroll(COLLECTION, limit=500, offset=offset)
            ids.extend(str(p.id) for p in points)
            if offset is None:
                return ids
    finally:
        client.close()


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout_s: float = 30) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=timeout_s)


async def test_kill_9_mid_stream_then_restart_stores_every_turn_exactly_once(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    kafka = kafka_settings
    qdrant_path = tmp_path / "qdrant"
    log = tmp_path / "memory.log"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(kafka.topic_partitions),
        "MEMORY_GROUP_ID": f"{kafka.topic_prefix}memory",
        "MEMORY_HOST": "127.0.0.1",
        "MEMORY_PORT": "0",
        "MEMORY_BATCH_SIZE": "16",
        "QDRANT_PATH": str(qdrant_path),
        "QDRANT_COLLECTION": COLLECTION,
        "LOG_LEVEL": "INFO",
    }
    env.pop("QDRANT_URL", None)
    await ensure_topics(kafka)
    expected = await publish_stream(kafka)
    seen: set[str] = set()

    async with kafka_consumer(
        kafka, kafka.memory_events_topic, group_id=None, name="test-reader"
    ) as events:
        first = worker(env, log)
        try:
            await stored_ids(events, seen, until=60, timeout_s=120)
        finally:
            assert stop(first, signal.SIGKILL) == -signal.SIGKILL
        stored_before_restart = set(points_in(qdrant_path))
        # Killed mid-stream: some turns stored, many not yet.
        assert 60 <= len(stored_before_restart) < len(expected), log.read_text()[-3000:]

        second = worker(env, log)
        try:
            await stored_ids(events, seen, until=len(expected), timeout_s=150)
        finally:
            assert stop(second, signal.SIGTERM) == 0, log.read_text()[-3000:]

    assert seen == expected
    ids = points_in(qdrant_path)
    assert len(ids) == len(expected)  # nothing doubled
    assert set(ids) == expected  # nothing lost
