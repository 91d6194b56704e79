"""`tidings memory rebuild`: replay the topics into a fresh collection, then switch to it.

Use it after changing the embedding model (the worker refuses the old collection) or to
recover a lost Qdrant. It reads `user_messages` and `model_responses` from the beginning
(no consumer group: the worker's committed offsets are untouched), embeds the turns in
batches into a new concrete collection, moves the `QDRANT_COLLECTION` alias to it in one
request, then replays what arrived meanwhile (the same points again are overwritten, so
nothing is lost or doubled) and finally drops the old collection.

Only what the topics still hold can be replayed: keep their retention long enough
(`retention.ms=-1`) if memory must be rebuildable. Local mode allows one process per folder,
so stop the worker first; against a Qdrant server the worker may keep running.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from tidings.common.kafka import describe_partitions, ensure_topics, kafka_consumer
from tidings.common.logging import get_logger
from tidings.memory.batch import parsers_for, plan_batch
from tidings.memory.collection import (
    ModelStamp,
    alias_target,
    create_collection,
    new_collection_name,
    point_alias,
)
from tidings.memory.embedder import TextEmbedder, embed_async
from tidings.memory.settings import MemorySettings
from tidings.memory.store import PAYLOAD_INDEXES, Qdrant, TurnStore, open_qdrant

log = get_logger(__name__)

Progress = Callable[[int, int], None]  # (records done in this call, total records known)


@dataclass(slots=True)
class RebuildReport:
    """What a rebuild did."""

    collection: str  # the new concrete collection the alias now points to
    previous: str | None  # what it pointed to before (dropped unless kept)
    records: int = 0
    turns: int = 0
    rejected: int = 0


async def rebuild(
    settings: MemorySettings,
    embedder: TextEmbedder,
    *,
    keep_old: bool = False,
    progress: Progress | None = None,
) -> RebuildReport:
    """Rebuild the conversation memory collection from the topics."""
    report_progress = progress or (lambda _done, _total: None)
    alias = settings.qdrant.collection
    stamp = ModelStamp(embedder.name, embedder.dimension)
    await ensure_topics(settings.kafka)
    async with open_qdrant(settings.qdrant) as qdrant:
        concrete = new_collection_name(alias)
        await qdrant.run(
            create_collection, qdrant.client, concrete, stamp, PAYLOAD_INDEXES, local=qdrant.local
        )
        report = RebuildReport(collection=concrete, previous=None)
        store = TurnStore(qdrant, concrete)
        async with kafka_consumer(settings.kafka, group_id=None, name="rebuild") as consumer:
            topics = [settings.kafka.user_messages_topic, settings.kafka.model_responses_topic]
            described = await describe_partitions(settings.kafka, topics)
            partitions = [
                TopicPartition(topic, partition)
                for topic in topics
                for partition in described.get(topic, ())
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            replay = _Replay(consumer, store, embedder, settings, report, report_progress)
            await replay.until(await consumer.end_offsets(partitions))
            report.previous = await qdrant.run(point_alias, qdrant.client, alias, concrete)
            # What the running worker wrote to the old collection before the switch.
            await replay.until(await consumer.end_offsets(partitions))
        await _drop_previous(qdrant, alias, report, keep_old=keep_old)
    log.info(
        "memory rebuilt",
        alias=alias,
        collection=concrete,
        previous=report.previous,
        records=report.records,
        turns=report.turns,
    )
    return report


async def _drop_previous(
    qdrant: Qdrant, alias: str, report: RebuildReport, *, keep_old: bool
) -> None:
    previous = report.previous
    if keep_old or previous is None or previous == alias:
        return  # nothing before, or a pre-alias collection that point_alias already replaced
    if await qdrant.run(alias_target, qdrant.client, alias) != previous:
        await qdrant.run(qdrant.client.delete_collection, previous)


class _Replay:
    """Reads the assigned partitions up to given offsets and stores their turns."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        store: TurnStore,
        embedder: TextEmbedder,
        settings: MemorySettings,
        report: RebuildReport,
        progress: Progress,
    ) -> None:
        self._consumer = consumer
        self._store = store
        self._embedder = embedder
        self._settings = settings
        self._report = report
        self._progress = progress
        self._parsers = parsers_for(
            settings.kafka.user_messages_topic, settings.kafka.model_responses_topic
        )
        self._total = 0

    async def until(self, ends: Mapping[TopicPartition, int]) -> None:
        """Process records until every partition's position reached `ends`."""
        positions = {tp: await self._consumer.position(tp) for tp in ends}
        self._total += sum(max(0, ends[tp] - positions[tp]) for tp in ends)
        self._progress(0, self._total)
        while any(positions[tp] < ends[tp] for tp in ends):
            fetched = await self._consumer.getmany(
                timeout_ms=1000, max_records=max(self._settings.batch_size, 64)
            )
            if not fetched:
                positions = {tp: await self._consumer.position(tp) for tp in ends}
                continue
            batch = plan_batch(fetched, self._parsers)
            vectors = await embed_async(self._embedder, [t.text for t in batch.turns])
            await self._store.upsert(batch.turns, vectors)
            await self._store.link_users(batch.turns)
            self._report.records += batch.records
            self._report.turns += len(batch.turns)
            self._report.rejected += len(batch.rejected)
            for tp, next_offset in batch.offsets.items():
                positions[tp] = max(positions.get(tp, 0), next_offset)
            self._progress(batch.records, self._total)
