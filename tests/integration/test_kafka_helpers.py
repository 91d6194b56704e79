"""The shared Kafka helpers against the real broker."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tidings.common.events import UserMessage
from tidings.common.kafka import (
    describe_partitions,
    ensure_topics,
    kafka_consumer,
    kafka_producer,
    publish,
)
from tidings.common.settings import KafkaSettings

pytestmark = pytest.mark.integration


async def test_topics_are_created_once_with_the_configured_partitions(
    kafka_settings: KafkaSettings,
) -> None:
    await ensure_topics(kafka_settings)
    await ensure_topics(kafka_settings)  # idempotent: existing topics are fine
    counts = await describe_partitions(kafka_settings, kafka_settings.topics)
    assert counts == {topic: 3 for topic in kafka_settings.topics}


async def test_a_stopped_member_leaves_so_the_next_one_is_not_kept_waiting(
    kafka_settings: KafkaSettings,
) -> None:
    """Tansu numbers the first generation 0, where aiokafka would skip LeaveGroup: the next
    member would then wait for the departed one's session to expire (10 s) on top of the
    ~5 s join (18 s measured), instead of the join alone."""
    await ensure_topics(kafka_settings)
    topic = kafka_settings.user_messages_topic
    group = f"{kafka_settings.topic_prefix}leave-test"
    async with kafka_producer(kafka_settings, name="test") as producer:
        await publish(
            producer,
            topic,
            UserMessage(message_id="m1", session_id="s1", text="hello"),
            key="s1",
        )
    options = {"session_timeout_ms": 10_000}
    async with kafka_consumer(kafka_settings, topic, group_id=group, name="a", **options) as a:
        records = await a.getmany(timeout_ms=10_000)
        assert sum(len(batch) for batch in records.values()) == 1
    started = time.monotonic()
    async with kafka_consumer(kafka_settings, topic, group_id=group, name="b", **options) as b:
        while not b.assignment() and time.monotonic() - started < 25:
            await b.getmany(timeout_ms=500)
            await asyncio.sleep(0)
        waited = time.monotonic() - started
        assert len(b.assignment()) == 3
    assert waited < 10, f"the second member waited {waited:.1f}s for its partitions"


async def _partition_count(settings: KafkaSettings, topic: str) -> int:
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return len(described["partitions"])
    finally:
        await admin.close()


async def test_repair_recreates_topics_auto_created_with_too_few_partitions(
    kafka_settings: KafkaSettings,
) -> None:
    # What a client does first after a memory-mode broker came back empty: asking for a
    # topic's metadata auto-creates it with the broker's default partition count.
    settings = kafka_settings.model_copy(update={"topic_partitions": 8})
    topic = settings.model_responses_topic
    async with kafka_producer(settings, name="auto-create") as producer:
        await producer.send_and_wait(topic, b"x")
    auto = await _partition_count(settings, topic)
    assert auto < 8, "the broker's default partition count is expected below 8"
    await ensure_topics(settings, [topic])  # start-up: existing topics are left alone
    assert await _partition_count(settings, topic) == auto
    await ensure_topics(settings, [topic], repair=True)  # after an outage: repaired
    assert await _partition_count(settings, topic) == 8
