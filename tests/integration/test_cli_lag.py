"""`tidings lag` against the real broker: a backlog it creates, committed offsets it sets."""

from __future__ import annotations

import asyncio
import json

import pytest
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from typer.testing import CliRunner

from tidings.cli.lag import KedaKafkaScaler, collect, lag
from tidings.common.kafka import ensure_topics, kafka_producer
from tidings.common.settings import KafkaSettings

pytestmark = pytest.mark.integration

# Messages written per partition of user_messages, and what the responder group committed.
BACKLOG = {0: 30, 1: 7, 2: 0}
COMMITTED = {0: 10, 1: 7}  # partition 2 never committed


async def _make_backlog(settings: KafkaSettings, group: str) -> None:
    await ensure_topics(settings)
    topic = settings.user_messages_topic
    async with kafka_producer(settings, name="lag-test") as producer:
        for partition, count in BACKLOG.items():
            for i in range(count):
                await producer.send(topic, b"{}", key=f"s{i}".encode(), partition=partition)
        await producer.flush()
    # Commit as a group member would, without joining the group (manual assignment).
    consumer = AIOKafkaConsumer(
        group_id=group, enable_auto_commit=False, **settings.client_kwargs()
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in COMMITTED])
        await consumer.commit({TopicPartition(topic, p): o for p, o in COMMITTED.items()})
    finally:
        await consumer.stop()


async def test_lag_and_keda_replicas_of_a_real_backlog(kafka_settings: KafkaSettings) -> None:
    group = f"{kafka_settings.topic_prefix}responder"
    await _make_backlog(kafka_settings, group)

    scaler = KedaKafkaScaler(lag_threshold=5, min_replicas=1)
    report = await collect(
        kafka_settings,
        responder_group=group,
        memory_group=f"{kafka_settings.topic_prefix}memory",
        scaler=scaler,
    )
    by_partition = {p.partition: p for p in report.responder.partitions}
    assert {p: (v.log_end, v.committed, v.lag) for p, v in by_partition.items()} == {
        0: (30, 10, 20),
        1: (7, 7, 0),
        2: (0, None, 1),  # never committed, offsetResetPolicy latest -> 1
    }
    # total 21 / threshold 5 -> 5 replicas, capped at the 3 partitions.
    assert report.responder_replicas == 3
    # The memory group has committed nothing: each of its 6 partitions counts 1.
    assert report.memory.total == 6

    # With a higher threshold the cap no longer applies: ceil(21 / 10) = 3, ceil(21 / 15) = 2.
    wide = await collect(
        kafka_settings,
        responder_group=group,
        memory_group=f"{kafka_settings.topic_prefix}memory",
        scaler=KedaKafkaScaler(lag_threshold=15, min_replicas=1),
    )
    assert wide.responder_replicas == 2


async def test_lag_command_prints_json(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = f"{kafka_settings.topic_prefix}responder"
    await _make_backlog(kafka_settings, group)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", kafka_settings.topic_prefix)
    app = typer.Typer()
    app.command()(lag)
    # The command runs its own event loop: run it in a worker thread, off the test's loop.
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        [
            "--json",
            "--responder-group",
            group,
            "--lag-threshold",
            "4",
            "--offset-reset-policy",
            "earliest",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    responder = data["groups"][0]
    assert responder["group"] == group
    # earliest: the never-committed partition counts its whole log (0 here).
    assert [p["lag"] for p in responder["partitions"]] == [20, 0, 0]
    assert data["keda"]["replicas"] == 3  # ceil(20 / 4) = 5, capped at 3 partitions
    assert data["keda"]["active"] is True
