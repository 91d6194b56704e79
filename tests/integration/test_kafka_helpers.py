"""The shared Kafka helpers against the real broker, and Tansu's workarounds
(tidings.common.broker_compat) against Tansu."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tidings.common.events import UserMessage
from tidings.common.kafka import (
    describe_partitions,
    ensure_topics,
    kafka_consumer,
    kafka_producer,
    publish,
)
from tidings.common.pacing import FetchPacer
from tidings.common.settings import KafkaSettings

pytestmark = pytest.mark.integration


async def test_topics_are_created_once_with_the_configured_partitions(
    kafka_settings: KafkaSettings,
) -> None:
    await ensure_topics(kafka_settings)
    await ensure_topics(kafka_settings)  # idempotent: existing topics are fine
    counts = await describe_partitions(kafka_settings, kafka_settings.topics)
    assert counts == {topic: [0, 1, 2] for topic in kafka_settings.topics}


@pytest.fixture(params=["session broker", "tansu"])
def either_broker(request: pytest.FixtureRequest) -> KafkaSettings:
    """The session's broker (Apache Kafka), and Tansu."""
    name = "kafka_settings" if request.param == "session broker" else "tansu_settings"
    settings: KafkaSettings = request.getfixturevalue(name)
    return settings


async def test_a_stopped_member_leaves_so_the_next_one_is_not_kept_waiting(
    either_broker: KafkaSettings,
) -> None:
    """The next member gets the partitions at once, not after the departed one's session
    expired (10 s). Kafka: aiokafka's own LeaveGroup. Tansu numbers the first generation 0,
    where aiokafka skips LeaveGroup (18 s measured without broker_compat's leave)."""
    kafka_settings = either_broker
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
    tansu_settings: KafkaSettings,
) -> None:
    # What a client does first after a memory-mode broker came back empty: asking for a
    # topic's metadata auto-creates it with the broker's default partition count.
    settings = tansu_settings.model_copy(update={"topic_partitions": 8})
    topic = settings.model_responses_topic
    async with kafka_producer(settings, name="auto-create") as producer:
        await producer.send_and_wait(topic, b"x")
    auto = await _partition_count(settings, topic)
    assert auto < 8, "the broker's default partition count is expected below 8"
    await ensure_topics(settings, [topic])  # start-up: existing topics are left alone
    assert await _partition_count(settings, topic) == auto
    await ensure_topics(settings, [topic], repair=True)  # after an outage: repaired
    assert await _partition_count(settings, topic) == 8


async def test_a_paced_consumer_fetches_with_the_busy_wait_during_traffic(
    tansu_settings: KafkaSettings,
) -> None:
    """Tansu holds every fetch for the wait the request carries, so the gaps between fetch
    requests show the wait in force: about the idle 1000 ms before traffic, the busy 5 ms
    during it, 1000 ms again after the hold."""
    kafka_settings = tansu_settings
    await ensure_topics(kafka_settings)
    topic = kafka_settings.memory_events_topic
    sent: list[float] = []

    def gaps_ms() -> float:
        gaps = sorted(b - a for a, b in itertools.pairwise(sent))
        sent.clear()
        return gaps[len(gaps) // 2] * 1000

    pacer = FetchPacer(name="paced-test", idle_ms=1000, busy_ms=5, hold_s=2.0)
    async with kafka_consumer(
        kafka_settings, group_id=None, name="paced", fetch_max_wait_ms=pacer.idle_ms
    ) as consumer:
        client_send = consumer._client.send

        async def spy(node_id: int, request: object, **kwargs: object) -> object:
            if type(request).__name__ == "FetchRequest":
                sent.append(time.monotonic())
            return await client_send(node_id, request, **kwargs)

        consumer._client.send = spy
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_end()
        pacer.attach(consumer)
        await consumer.getmany(timeout_ms=3500)
        idle = gaps_ms()
        pacer.touch()
        await consumer.getmany(timeout_ms=1500)  # the idle fetch in flight ends first
        sent.clear()
        await consumer.getmany(timeout_ms=500)
        busy = gaps_ms()
        await asyncio.sleep(2.0)
        pacer.tick()
        await consumer.getmany(timeout_ms=1500)
        sent.clear()
        await consumer.getmany(timeout_ms=3500)
        after = gaps_ms()
    assert idle > 800, f"idle fetches {idle:.0f} ms apart"
    assert busy < 200, f"busy fetches {busy:.0f} ms apart"
    assert after > 800, f"fetches after the hold {after:.0f} ms apart"
