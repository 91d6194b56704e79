"""Broker compatibility: everything Tidings does only because of the Tansu dev broker.

Production runs on Apache Kafka (compose: KRaft; Kubernetes: Strimzi), and so do the tests,
the chaos drills and the benchmarks. Tansu, a young Kafka-protocol broker without a JVM, is
what `make run` falls back to on a machine without Java, and a fast path of a few tests. It
differs from Kafka in ways that cost correctness or latency; each difference, and what
Tidings does about it, is listed here and is on only with KAFKA_BROKER=tansu:

| Tansu                                              | workaround (here)                    |
|----------------------------------------------------|--------------------------------------|
| holds every fetch for its whole wait, data or not  | `pace_fetches`: tidings.common.pacing |
|                                                    | switches short/long waits (private   |
|                                                    | aiokafka attribute `_fetcher`)       |
| numbers the first group generation 0, where        | `leave_group_at_generation_zero`     |
| aiokafka skips LeaveGroup                          | (private `_coordinator`)             |
| memory storage: after a restart the first metadata | `repair_auto_created_topics`         |
| request auto-creates topics with its default       |                                      |
| partition count; no CreatePartitions               |                                      |
| ListOffsets(latest) = last batch's base offset + 1 | `true_log_ends`                      |
| no idempotent producer                             | KAFKA_ENABLE_IDEMPOTENCE off         |
| fetch waits of 10/3 ms instead of Kafka's 500      | settings.TANSU_DEFAULTS              |

Not here, because they guard any broker whose log is lost (Kafka with ephemeral storage
too): the gateway's check that a partition it resumes is still the same log
(`gateway.resume`, `gateway.hub`) and the responder's restart of positions past a log's end
(`responder.consumer`). On Apache Kafka with its log on disk they never trigger.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from tidings.common.logging import get_logger
from tidings.common.settings import BrokerKind, KafkaSettings

log = get_logger(__name__)


@dataclass(frozen=True)
class BrokerCompat:
    """Which workarounds are on for the configured broker."""

    kind: BrokerKind

    @classmethod
    def of(cls, settings: KafkaSettings) -> BrokerCompat:
        return cls(settings.broker)

    @property
    def tansu(self) -> bool:
        return self.kind is BrokerKind.TANSU

    @property
    def pace_fetches(self) -> bool:
        """Switch fetch waits with traffic (Kafka answers a fetch when data arrives)."""
        return self.tansu

    @property
    def leave_group_at_generation_zero(self) -> bool:
        return self.tansu

    @property
    def repair_auto_created_topics(self) -> bool:
        return self.tansu

    @property
    def verify_log_ends(self) -> bool:
        return self.tansu


async def leave_group_at_generation_zero(consumer: AIOKafkaConsumer) -> None:
    """Leave the group explicitly when the broker numbered our generation 0.

    aiokafka only sends LeaveGroup for generations above 0 (Kafka starts at 1), but Tansu
    starts at 0; without the leave, the next member of the group waits a whole session
    timeout (~18 s measured) for the departed one to expire. Best effort, as aiokafka's own.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or getattr(coordinator, "generation", None) != 0:
        return
    member_id = getattr(coordinator, "member_id", "")
    if not member_id:
        return
    from aiokafka.protocol.group import LeaveGroupRequest

    try:
        await asyncio.wait_for(
            coordinator._send_req(LeaveGroupRequest(coordinator.group_id, member_id)), 5
        )
        log.info("left consumer group", group=coordinator.group_id)
    except (KafkaError, TimeoutError, OSError) as exc:
        log.warning("could not leave consumer group", error=str(exc))
    coordinator.reset_generation()


async def repair_auto_created_topics(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, topics: list[str]
) -> None:
    """Recreate topics that have fewer partitions than KAFKA_TOPIC_PARTITIONS.

    Only after a broker outage (the gateway's broker watch): Tansu in memory mode comes back
    empty, and the first client to ask for a topic's metadata gets it auto-created with the
    broker's default partition count (aiokafka always allows auto-creation). Partitions beyond
    that count are then read by nobody: answers keyed to them never reach a stream (seen in
    the chaos drill). Tansu cannot add partitions (no CreatePartitions), so such a topic,
    fresh from the restart, is deleted and created again with the configured count. A topic
    with at least the configured count is never touched. (Apache Kafka keeps its topics on
    disk, and compose and the local broker turn auto-creation off.)
    """
    for _ in range(3):
        described = await admin.describe_topics(topics)
        short = {
            str(topic["topic"]): len(topic["partitions"])
            for topic in described
            if topic.get("error_code", 0) == 0
            and 0 < len(topic["partitions"]) < settings.topic_partitions
        }
        if not short:
            return
        log.warning(
            "topics auto-created with too few partitions after a broker outage; recreating them",
            partitions=short,
            wanted=settings.topic_partitions,
        )
        await admin.delete_topics(list(short))
        await admin.create_topics(
            [
                NewTopic(name, settings.topic_partitions, settings.replication_factor)
                for name in short
            ]
        )


async def true_log_ends(
    settings: KafkaSettings, reported: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Log-end offsets, checked against the last record of each partition.

    Tansu answers ListOffsets(latest) with the base offset of the last record batch + 1,
    which undercounts when a producer batched several records; reading the last batch and
    taking its last record's offset + 1 gives the true end. One fetch per non-empty
    partition, without a group.
    """
    wanted = {tp: end for tp, end in reported.items() if end > 0}
    if not wanted:
        return dict(reported)
    reader = AIOKafkaConsumer(
        client_id=f"{settings.client_id}-lag-end",
        enable_auto_commit=False,
        **settings.client_kwargs(),
    )
    await reader.start()
    try:
        reader.assign(list(wanted))
        for tp, end in wanted.items():
            reader.seek(tp, end - 1)
        ends = dict(reported)
        pending = set(wanted)
        # Bounded: a few fetch rounds; a partition whose last batch does not come back keeps
        # the broker's figure.
        for _ in range(10):
            if not pending:
                break
            batches: dict[Any, list[Any]] = await reader.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                if records:
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
                    pending.discard(tp)
                    reader.pause(tp)
        return ends
    finally:
        # Bounded like every client stop (kafka.py imports this module, hence here).
        from tidings.common.kafka import stop_client

        await stop_client(reader, name="lag-end-reader", timeout_s=10.0)
