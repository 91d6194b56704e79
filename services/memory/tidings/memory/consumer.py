"""The memory worker's Kafka loop: fetch, embed, store, announce, commit, in that order.

At-least-once: a batch's offsets are committed only after its turns are in Qdrant and its
`memory.stored` events are acknowledged, so a crash means a redelivery, which overwrites
the same points (their ids are deterministic), never a loss.

Two batches overlap: while batch N is written to Qdrant and announced, batch N+1 is
fetched and embedded (in a worker thread). Writes and commits still happen one batch at a
time, in fetch order, so a commit never covers a batch that is not stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import TopicPartition

from tidings.common.events import MemoryStored
from tidings.common.kafka import dead_letter
from tidings.common.logging import bind, get_logger
from tidings.common.tracing import TRACEPARENT_HEADER, child_traceparent, trace_id_of
from tidings.memory import metrics
from tidings.memory.batch import Batch, Record, Rejected, parsers_for, plan_batch
from tidings.memory.embedder import TextEmbedder, embed_async
from tidings.memory.retry import with_retries
from tidings.memory.settings import MemorySettings
from tidings.memory.store import TurnStore

log = get_logger(__name__)

T = TypeVar("T")


class MemoryWorker:
    """Consumes `user_messages` and `model_responses` and keeps their turns in Qdrant."""

    def __init__(
        self,
        settings: MemorySettings,
        *,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: TurnStore,
        embedder: TextEmbedder,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._producer = producer
        self._store = store
        self._embedder = embedder
        kafka = settings.kafka
        self.topics = [kafka.user_messages_topic, kafka.model_responses_topic]
        self._parsers = parsers_for(*self.topics)
        self._stopping = asyncio.Event()
        # Fetched batches not yet committed (0, 1 or 2); a rebalance waits for none.
        self._unfinished = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self.rebalance_listener: ConsumerRebalanceListener = _FinishBeforeRevoke(
            self, timeout_s=settings.shutdown_grace_s
        )

    def subscribe(self) -> None:
        """Join the group for both topics, finishing in-flight batches before any rebalance."""
        self._consumer.subscribe(self.topics, listener=self.rebalance_listener)

    def request_stop(self) -> None:
        """Stop fetching; the batches already fetched are still stored and committed."""
        self._stopping.set()

    async def run(self) -> None:
        """Process batches until `request_stop`; raises if a batch cannot be stored."""
        writing: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                if writing is not None and writing.done():
                    finished, writing = writing, None
                    finished.result()  # a failed write stops the worker now, not next batch
                fetched = await self._consumer.getmany(
                    timeout_ms=self._settings.batch_wait_ms,
                    max_records=self._settings.batch_size,
                )
                if not fetched:
                    continue
                self._begin()  # no await since getmany: a rebalance cannot slip in between
                try:
                    batch, vectors = await self._prepare(fetched)
                    if writing is not None:
                        previous, writing = writing, None
                        await previous  # commits stay in fetch order
                except BaseException:
                    self._finish()
                    raise
                writing = asyncio.create_task(self._write(batch, vectors), name="memory-write")
        finally:
            if writing is not None:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    writing.cancel()  # the shutdown grace ran out
                await writing

    async def _prepare(
        self, fetched: Mapping[TopicPartition, Sequence[Record]]
    ) -> tuple[Batch, list[list[float]]]:
        """Classify the records, dead-letter the invalid ones, embed the turns."""
        batch = plan_batch(fetched, self._parsers)
        metrics.BATCH_SIZE.observe(batch.records)
        for rejected in batch.rejected:
            await self._retry(partial(self._dead_letter, rejected), what="dead-letter")
            metrics.DEAD_LETTERED.labels(rejected.record.topic).inc()
        started = time.perf_counter()
        vectors = await embed_async(self._embedder, [turn.text for turn in batch.turns])
        if batch.turns:
            metrics.EMBED_SECONDS.observe(time.perf_counter() - started)
        return batch, vectors

    async def _dead_letter(self, rejected: Rejected) -> None:
        await dead_letter(
            self._producer,
            self._settings.kafka,
            rejected.record,
            reason=rejected.reason,
            consumer_group=self._settings.group_id,
        )

    async def _write(self, batch: Batch, vectors: list[list[float]]) -> None:
        """Store, announce, then commit one batch."""
        try:
            if batch.turns:
                started = time.perf_counter()
                await self._retry(lambda: self._store.upsert(batch.turns, vectors), what="upsert")
                await self._retry(lambda: self._store.link_users(batch.turns), what="link users")
                metrics.UPSERT_SECONDS.observe(time.perf_counter() - started)
                await self._retry(lambda: self._announce(batch), what="publish memory.stored")
                self._log_stored(batch)
            await self._commit(batch)
        finally:
            self._finish()

    async def _announce(self, batch: Batch) -> None:
        """One `memory.stored` per turn, keyed by session; all sent, then all awaited."""
        topic = self._settings.kafka.memory_events_topic
        pending = []
        for turn in batch.turns:
            event = MemoryStored(
                message_id=turn.message_id,
                session_id=turn.session_id,
                role=turn.role,
                point_id=turn.point_id,
                collection=self._store.collection,
            )
            traceparent = child_traceparent(batch.traceparents.get(turn.point_id))
            pending.append(
                await self._producer.send(
                    topic,
                    event.to_bytes(),
                    key=turn.session_id.encode(),
                    headers=[(TRACEPARENT_HEADER, traceparent.encode())],
                )
            )
        await asyncio.gather(*pending)

    async def _commit(self, batch: Batch) -> None:
        try:
            await self._retry(lambda: self._consumer.commit(batch.offsets), what="commit")
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved to another member, which will fetch these records again
            # and overwrite the same points: a repeat, not a loss.
            log.warning("commit skipped after rebalance", error=str(exc)[:300])
            return
        metrics.LAST_BATCH.set_to_current_time()
        log.debug(
            "batch committed",
            records=batch.records,
            turns=len(batch.turns),
            skipped=batch.skipped,
            dead_lettered=len(batch.rejected),
        )

    def _log_stored(self, batch: Batch) -> None:
        for turn in batch.turns:
            metrics.TURNS_STORED.labels(turn.role).inc()
            trace_id = trace_id_of(batch.traceparents.get(turn.point_id))
            with bind(
                session_id=turn.session_id,
                message_id=turn.message_id,
                attempt=turn.attempt,
                trace_id=trace_id,
            ):
                log.info("turn stored", role=turn.role, point_id=turn.point_id)

    async def _retry(self, operation: Callable[[], Awaitable[T]], *, what: str) -> T:
        return await with_retries(
            operation,
            what=what,
            attempts=self._settings.retry_attempts,
            backoff_s=self._settings.retry_backoff_s,
        )

    def _begin(self) -> None:
        self._unfinished += 1
        self._drained.clear()

    def _finish(self) -> None:
        self._unfinished -= 1
        if self._unfinished == 0:
            self._drained.set()

    async def wait_drained(self, timeout_s: float) -> bool:
        """Wait until every fetched batch is committed (or given up); False on timeout."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


class _FinishBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets in-flight batches commit before their partitions go to another member."""

    def __init__(self, worker: MemoryWorker, *, timeout_s: float) -> None:
        self._worker = worker
        self._timeout_s = timeout_s

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked and not await self._worker.wait_drained(self._timeout_s):
            log.warning("rebalance went ahead with a batch in flight", partitions=len(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
        )
