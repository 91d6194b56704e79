"""Standard Kafka tools read Tidings' topics: librdkafka (kcat's library, via confluent-kafka).

On Apache Kafka, as production runs it. (Tansu does not speak to librdkafka: its
ApiVersionRequest fails, which is one reason the tests run on Kafka.)
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from confluent_kafka import Consumer, KafkaException

from tidings.common.events import UserMessage, new_id, parse_inbound_event
from tidings.common.kafka import ensure_topics, kafka_producer, publish
from tidings.common.settings import KafkaSettings

pytestmark = pytest.mark.integration


def _read_with_librdkafka(settings: KafkaSettings, topic: str, want: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"{settings.topic_prefix}kcat-like",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=10)
        assert len(metadata.topics[topic].partitions) == settings.topic_partitions
        consumer.subscribe([topic])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(values) < want and time.monotonic() < deadline:
            record = consumer.poll(0.5)
            if record is None:
                continue
            if record.error():
                raise KafkaException(record.error())
            values.append(record.value())
        return values
    finally:
        consumer.close()


async def test_librdkafka_reads_the_messages_tidings_writes(kafka_settings: KafkaSettings) -> None:
    if os.environ.get("KAFKA_BROKER") == "tansu":
        pytest.skip("librdkafka cannot talk to Tansu (ApiVersionRequest fails)")
    await ensure_topics(kafka_settings)
    sent = [
        UserMessage(message_id=new_id(), session_id=f"s{i}", text=f"Do you ship to {place}?")
        for i, place in enumerate(("Canada", "Japan", "Peru"))
    ]
    async with kafka_producer(kafka_settings, name="tools-test") as producer:
        for message in sent:
            await publish(
                producer, kafka_settings.user_messages_topic, message, key=message.session_id
            )
    values = await asyncio.to_thread(
        _read_with_librdkafka, kafka_settings, kafka_settings.user_messages_topic, len(sent)
    )
    read = {parse_inbound_event(value).message_id for value in values}
    assert read == {message.message_id for message in sent}
