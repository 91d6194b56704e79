"""aiokafka helpers: topic creation, producer and consumer lifecycles, dead-lettering.

Long-lived clients are created in `async with` blocks and always stopped, so no background
task outlives its service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError, UnknownError
from aiokafka.structs import ConsumerRecord, RecordMetadata

from tidings.common.broker_compat import (
    BrokerCompat,
    leave_group_at_generation_zero,
    repair_auto_created_topics,
)
from tidings.common.events import Event
from tidings.common.logging import get_logger
from tidings.common.settings import KafkaSettings

log = get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36
Headers = list[tuple[str, bytes]]


def all_topics(settings: KafkaSettings) -> list[str]:
    """The contract's topics and the dead-letter topics of the two consumed ones."""
    return [
        *settings.topics,
        settings.dlq_topic(settings.user_messages_topic),
        settings.dlq_topic(settings.model_responses_topic),
    ]


async def ensure_topics(
    settings: KafkaSettings,
    topics: Sequence[str] | None = None,
    *,
    attempts: int = 30,
    delay_s: float = 1.0,
    repair: bool = False,
) -> None:
    """Create the topics if they do not exist; waits for the broker to come up.

    Called by every service at start-up, so the order in which services start never
    matters. Existing topics are left as they are, unless `repair` on Tansu (see
    `broker_compat.repair_auto_created_topics`).
    """
    wanted = list(topics or all_topics(settings))
    last_error: Exception | None = None
    for _ in range(attempts):
        admin = AIOKafkaAdminClient(
            client_id=f"{settings.client_id}-admin", **settings.client_kwargs()
        )
        try:
            await admin.start()
            response = await admin.create_topics(
                [
                    NewTopic(name, settings.topic_partitions, settings.replication_factor)
                    for name in wanted
                ]
            )
            failures = [
                (topic, message)
                for topic, code, message in response.topic_errors
                if code not in (0, _TOPIC_ALREADY_EXISTS)
            ]
            if failures:
                raise RuntimeError(f"could not create topics: {failures}")
            if repair and BrokerCompat.of(settings).repair_auto_created_topics:
                await repair_auto_created_topics(admin, settings, wanted)
            log.info("topics ready", topics=wanted, partitions=settings.topic_partitions)
            return
        except (KafkaError, TimeoutError) as exc:
            # A request that ran out of time (aiokafka raises the builtin TimeoutError when a
            # connection to a slow or starting broker takes longer than request_timeout_ms)
            # is one more "not reachable yet".
            last_error = exc
            log.warning(
                "broker not reachable yet",
                bootstrap=settings.bootstrap_servers,
                error=str(exc) or type(exc).__name__,
            )
            await asyncio.sleep(delay_s)
        finally:
            await admin.close()
    raise ConnectionError(
        f"Kafka at {settings.bootstrap_servers} was not reachable after {attempts} attempts: "
        f"{last_error}"
    )


@asynccontextmanager
async def kafka_producer(settings: KafkaSettings, *, name: str) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer that waits for all in-sync replicas (`acks=all`)."""
    producer = AIOKafkaProducer(
        client_id=f"{settings.client_id}-{name}",
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        linger_ms=settings.linger_ms,
        **settings.client_kwargs(),
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@asynccontextmanager
async def kafka_consumer(
    settings: KafkaSettings,
    *topics: str,
    group_id: str | None,
    name: str,
    **options: Any,
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer with manual commits (the caller commits after its work is done)."""
    consumer = AIOKafkaConsumer(
        *topics,
        group_id=group_id,
        client_id=f"{settings.client_id}-{name}",
        enable_auto_commit=False,
        auto_offset_reset=options.pop("auto_offset_reset", "earliest"),
        fetch_max_wait_ms=options.pop("fetch_max_wait_ms", settings.fetch_max_wait_ms),
        **settings.client_kwargs(),
        **options,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        if group_id is not None and BrokerCompat.of(settings).leave_group_at_generation_zero:
            await leave_group_at_generation_zero(consumer)
        await consumer.stop()


async def publish(
    producer: AIOKafkaProducer,
    topic: str,
    event: Event,
    *,
    key: str,
    headers: Headers | None = None,
) -> RecordMetadata:
    """Send one event and wait until the broker acknowledged it."""
    return await producer.send_and_wait(
        topic, event.to_bytes(), key=key.encode(), headers=headers or []
    )


async def dead_letter(
    producer: AIOKafkaProducer,
    settings: KafkaSettings,
    record: ConsumerRecord[bytes, bytes],
    *,
    reason: str,
    consumer_group: str,
) -> None:
    """Copy a record that cannot be used to `<topic>.dlq`, with why in its headers.

    The original key, value and headers are kept so the event can be inspected and replayed.
    """
    headers: Headers = [
        *list(record.headers or ()),
        ("dlq.reason", reason[:2000].encode()),
        ("dlq.source.topic", record.topic.encode()),
        ("dlq.source.partition", str(record.partition).encode()),
        ("dlq.source.offset", str(record.offset).encode()),
        ("dlq.consumer.group", consumer_group.encode()),
    ]
    await producer.send_and_wait(
        settings.dlq_topic(record.topic),
        record.value if record.value is not None else b"",
        key=record.key,
        headers=headers,
    )
    log.warning(
        "event dead-lettered",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=reason[:300],
    )


async def broker_reachable(settings: KafkaSettings, *, timeout_s: float = 2.0) -> bool:
    """True when a metadata request to the broker succeeds within `timeout_s`."""
    admin = AIOKafkaAdminClient(
        client_id=f"{settings.client_id}-probe",
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout_s)
        return True
    except (KafkaError, TimeoutError, OSError):
        return False
    finally:
        await admin.close()


def record_key(record: ConsumerRecord[bytes, bytes]) -> str | None:
    """The record's key as text, or None."""
    return record.key.decode(errors="replace") if record.key is not None else None


def topic_partitions_of(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[Any]:
    """Every partition of `topics` known to the consumer's metadata."""
    from aiokafka import TopicPartition

    result: list[Any] = []
    for topic in topics:
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            result.append(TopicPartition(topic, partition))
    return result


async def describe_partitions(
    settings: KafkaSettings, topics: Iterable[str]
) -> dict[str, list[int]]:
    """The partition numbers of each of `topics` that exists on the broker.

    Asks the broker (Metadata for these topics) rather than a consumer's metadata cache,
    which `AIOKafkaConsumer.topics()` does not refresh.
    """
    admin = AIOKafkaAdminClient(
        client_id=f"{settings.client_id}-describe", **settings.client_kwargs()
    )
    try:
        await admin.start()
        described = await admin.describe_topics(list(topics))
    except KafkaError as exc:
        raise ConnectionError(f"Kafka at {settings.bootstrap_servers}: {exc}") from exc
    finally:
        await admin.close()
    return {
        str(topic["topic"]): sorted(int(p["partition"]) for p in topic["partitions"])
        for topic in described
        if topic.get("error_code", 0) == 0 and topic["partitions"]
    }


def is_transient(exc: KafkaError) -> bool:
    """True for broker errors worth retrying (with a bound).

    aiokafka's own `retriable` flag, plus timeouts and UNKNOWN_SERVER_ERROR: a broker that
    was just restarted (Tansu in particular) answers produce requests with it until its
    metadata settles, and a worker that gave up on it would exit for nothing.
    """
    return bool(exc.retriable) or isinstance(exc, KafkaTimeoutError | UnknownError)
