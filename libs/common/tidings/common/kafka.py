"""aiokafka helpers: topic creation, producer and consumer lifecycles, dead-lettering.

Long-lived clients are created in `async with` blocks and always stopped, so no background
task outlives its service. Stopping is bounded (`stop_client`, `stop_task`): a client or task
that does not end when told is abandoned and logged with where it is stuck, so a service always
shuts down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
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
            await close_admin(admin)
    raise ConnectionError(
        f"Kafka at {settings.bootstrap_servers} was not reachable after {attempts} attempts: "
        f"{last_error}"
    )


def stop_timeout_of(settings: KafkaSettings) -> float:
    """How long stopping a client may take: its last requests (the producer's pending batches,
    a consumer's LeaveGroup) are each bounded by the request timeout."""
    return settings.request_timeout_ms / 1000 + 5.0


@asynccontextmanager
async def kafka_producer(
    settings: KafkaSettings, *, name: str, stop_timeout_s: float | None = None
) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer that waits for all in-sync replicas (`acks=all`).

    On exit it is stopped within `stop_timeout_s` (default `stop_timeout_of(settings)`), or
    abandoned (see `stop_client`).
    """
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
        await stop_client(
            producer,
            name=f"{name}-producer",
            timeout_s=stop_timeout_of(settings) if stop_timeout_s is None else stop_timeout_s,
        )


@asynccontextmanager
async def kafka_consumer(
    settings: KafkaSettings,
    *topics: str,
    group_id: str | None,
    name: str,
    **options: Any,
) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer with manual commits (the caller commits after its work is done).

    On exit it is stopped within `stop_timeout_of(settings)` (or the rebalance timeout, if
    longer), or abandoned (see `stop_client`).
    """
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
        # A stop in the middle of a rebalance lets it finish first (bounded by its timeout).
        rebalance_s = (options.get("rebalance_timeout_ms") or 0) / 1000 + 5.0
        stop_timeout_s = max(stop_timeout_of(settings), rebalance_s)
        await stop_client(consumer, name=f"{name}-consumer", timeout_s=stop_timeout_s)


async def stop_client(client: Any, *, name: str, timeout_s: float) -> bool:
    """Stop an aiokafka consumer or producer within `timeout_s`; False when it was abandoned.

    `client.stop()` runs in a task of its own, so a stop that does not end (a background task
    of the client's that ignored its cancellation) is abandoned - cancelled, logged with where
    it waits - instead of holding up the shutdown of the whole service.

    A consumer stopped while one of its fetch requests backed off from an unreachable broker
    ends its `stop()` with that request's cancellation (aiokafka's `Fetcher.close` awaits its
    cancelled tasks unguarded) before closing its connections: its metadata task would go on
    reconnecting to the broker for the life of the process. The connections are closed here
    then, and the caller is not told the cancellation that was not its own.
    """
    stopping = await _within(client.stop(), name=f"{name}-stop", timeout_s=timeout_s)
    if not stopping.done():
        log.error(
            "Kafka client did not stop in time; abandoned",
            client=name,
            timeout_s=timeout_s,
            waiting_at=where_waiting(stopping),
        )
        stopping.cancel()
        stopping.add_done_callback(_retrieve)
        await _close_connections(client, name=name, timeout_s=min(timeout_s, 5.0))
        return False
    if stopping.cancelled():
        log.warning(
            "Kafka client stop ended by one of its own cancelled requests (broker unreachable?);"
            " closing its connections",
            client=name,
        )
        await _close_connections(client, name=name, timeout_s=min(timeout_s, 5.0))
        return True
    error = stopping.exception()
    if error is not None:
        log.warning("Kafka client stop failed", client=name, error=repr(error))
    return True


async def _within(
    call: Coroutine[Any, Any, Any], *, name: str, timeout_s: float
) -> asyncio.Task[Any]:
    """Run `call` in a task of its own and wait for it at most `timeout_s`; the task, ended or
    not. The caller's own cancellation cancels the task too."""
    task = asyncio.create_task(call, name=name)
    try:
        await asyncio.wait([task], timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    return task


async def _close_connections(client: Any, *, name: str, timeout_s: float) -> None:
    """Close the connections (and metadata task) of a client whose stop did not get there."""
    inner = getattr(client, "_client", None) or getattr(client, "client", None)
    if inner is None:
        return
    closing = await _within(inner.close(), name=f"{name}-close", timeout_s=timeout_s)
    if not closing.done():
        log.error(
            "Kafka client connections did not close in time; abandoned",
            client=name,
            waiting_at=where_waiting(closing),
        )
        closing.cancel()
    closing.add_done_callback(_retrieve)


async def stop_task(
    task: asyncio.Task[Any], *, name: str, timeout_s: float, again_after_s: float = 1.0
) -> bool:
    """Cancel `task` and wait for it to end, at most `timeout_s`; False when it was abandoned.

    A task that has not ended `again_after_s` after its cancellation is cancelled again: one
    can miss a cancellation (Python 3.11's `asyncio.wait_for` returns the result of an
    operation that completed together with the cancel and drops the cancel; aiokafka catches
    CancelledError in places). Still running at the deadline, it is left behind and logged
    with where it waits. The caller's own cancellation is never swallowed, and the task's
    exception, if any, is left to its own done callbacks.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    cancels = 0
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            log.error(
                "task did not stop when cancelled; abandoned",
                task=name,
                timeout_s=timeout_s,
                cancels=cancels,
                waiting_at=where_waiting(task),
            )
            return False
        if cancels:
            log.warning(
                "task ignored its cancellation; cancelling it again",
                task=name,
                waiting_at=where_waiting(task),
            )
        task.cancel()
        cancels += 1
        await asyncio.wait([task], timeout=min(left, again_after_s))
    return True


def where_waiting(task: asyncio.Task[Any], *, limit: int = 40) -> str:
    """Where a pending task waits: its chain of awaits, outermost first, followed into the
    task it awaits, if it awaits one (`Task._fut_waiter`, a CPython detail)."""
    steps: list[str] = []
    current: asyncio.Task[Any] | None = task
    while current is not None and len(steps) < limit:
        awaited: Any = current.get_coro()
        while awaited is not None and len(steps) < limit:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            frame = frame or getattr(awaited, "gi_frame", None)
            if frame is None:
                break
            code = frame.f_code
            steps.append(f"{code.co_name} ({Path(code.co_filename).name}:{frame.f_lineno})")
            awaited = (
                getattr(awaited, "cr_await", None)
                or getattr(awaited, "ag_await", None)
                or getattr(awaited, "gi_yieldfrom", None)
            )
        waiter = getattr(current, "_fut_waiter", None)
        current = None
        if isinstance(waiter, asyncio.Task) and not waiter.done():
            steps.append(f"[task {waiter.get_name()!r}]")
            current = waiter
    return " > ".join(steps)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark an abandoned task's outcome as seen (it was logged when it was abandoned)."""
    if not task.cancelled():
        task.exception()


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
    """True when a metadata request to the broker succeeds within `timeout_s`.

    Cancelling it always cancels it: `asyncio.timeout`, not `asyncio.wait_for` (on Python 3.11
    `wait_for` returns the result of a request that completes in the moment its caller is
    cancelled and drops the cancellation), and `close_admin`. A probe that lost its
    cancellation kept the gateway's broker watch, and so the gateway's shutdown, running.
    """
    admin = AIOKafkaAdminClient(
        client_id=f"{settings.client_id}-probe",
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
        async with asyncio.timeout(timeout_s):
            await admin.list_topics()
        return True
    except (KafkaError, TimeoutError, OSError):
        return False
    finally:
        await close_admin(admin)


async def close_admin(admin: AIOKafkaAdminClient) -> None:
    """Close an admin client without losing a cancellation of the caller.

    aiokafka's `AIOKafkaClient.close()` awaits its metadata task under
    `contextlib.suppress(CancelledError)`, which also swallows a cancellation of the task that
    called `close()` arriving meanwhile; that cancellation is raised again here.
    """
    task = asyncio.current_task()
    cancels = 0 if task is None else task.cancelling()
    await admin.close()
    if task is not None and task.cancelling() > cancels:
        raise asyncio.CancelledError


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
        await close_admin(admin)
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
