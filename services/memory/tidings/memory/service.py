"""The memory service: its Kafka worker, its Qdrant store and its HTTP endpoints, as one unit.

`async with MemoryService(settings) as service:` creates the topics, loads the embedding
model (unless one is given), opens Qdrant (refusing collections built by another model),
loads the sample knowledge base if asked and the knowledge collection is empty, joins the
`memory` group and serves the memory API with `/health`, `/ready` and `/metrics`. Leaving
the block stops fetching, lets the batches in flight be stored and committed within
`shutdown_grace_s`, leaves the group and closes Qdrant (which releases local mode's lock).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from types import TracebackType

from fastapi import FastAPI

from tidings.common.kafka import ensure_topics, kafka_consumer, kafka_producer, stop_task
from tidings.common.logging import get_logger
from tidings.common.ops import ops_app
from tidings.common.runtime import HttpServer
from tidings.memory.api import MemoryBackends, memory_app
from tidings.memory.collection import ModelStamp
from tidings.memory.consumer import MemoryWorker
from tidings.memory.embedder import Embedder, TextEmbedder
from tidings.memory.knowledge.ingest import Ingestor, sample_source
from tidings.memory.knowledge.store import (
    KnowledgeStore,
    new_knowledge_collection,
    switch_knowledge_collection,
)
from tidings.memory.settings import MemorySettings
from tidings.memory.store import Qdrant, TurnStore, open_qdrant

log = get_logger(__name__)

# A background task cancelled at shutdown that has not ended by then is abandoned (logged).
STOP_TIMEOUT_S = 10.0


class WorkerStoppedError(RuntimeError):
    """The consumer loop ended on its own; the process should exit and be restarted."""


class MemoryService:
    """The memory worker with everything it owns; an async context manager."""

    def __init__(self, settings: MemorySettings, embedder: TextEmbedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._stack = AsyncExitStack()
        self._store: TurnStore | None = None
        self._knowledge: KnowledgeStore | None = None
        self._worker: MemoryWorker | None = None
        self._task: asyncio.Task[None] | None = None
        self._http: HttpServer | None = None
        self._metrics_http: HttpServer | None = None

    async def __aenter__(self) -> MemoryService:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is None and self._http is None:
            return  # never started, or already stopped
        await self._stack.aclose()
        self._task = None
        self._http = None
        log.info("memory stopped")

    async def _start(self) -> None:
        settings = self.settings
        settings.check_exposure()
        await ensure_topics(settings.kafka)
        if self._embedder is None:
            self._embedder = await asyncio.to_thread(
                Embedder.load, settings.embedding_model, device=settings.embedding_device
            )
        embedder = self._embedder
        stamp = ModelStamp(embedder.name, embedder.dimension)
        qdrant = await self._stack.enter_async_context(open_qdrant(settings.qdrant))
        self._store = TurnStore(qdrant, settings.qdrant.collection)
        await self._store.ensure_collection(stamp)
        self._knowledge = KnowledgeStore(qdrant, settings.knowledge_collection)
        await self._knowledge.ensure_collection(stamp)
        if settings.knowledge_sample:
            await self._sample_ready(qdrant, stamp, embedder)
        producer = await self._stack.enter_async_context(
            kafka_producer(settings.kafka, name="memory")
        )
        consumer = await self._stack.enter_async_context(
            kafka_consumer(
                settings.kafka,
                group_id=settings.group_id,
                name="memory",
                fetch_max_wait_ms=settings.fetch_max_wait_ms,
            )
        )
        self._worker = MemoryWorker(
            settings, consumer=consumer, producer=producer, store=self._store, embedder=embedder
        )
        self._worker.subscribe()
        self._task = asyncio.create_task(self._worker.run(), name="memory-worker")
        self._task.add_done_callback(_log_worker_end)
        self._stack.push_async_callback(self._stop_worker)
        self._http = HttpServer(self.app(), settings.host, settings.port, name="memory")
        await self._http.start()
        self._stack.push_async_callback(self._http.stop)
        if settings.metrics_port is not None:
            # Monitoring reaches this port only; the data routes are not on it.
            self._metrics_http = HttpServer(
                ops_app("memory", self._ready_checks),
                settings.metrics_host or settings.host,
                settings.metrics_port,
                name="memory-metrics",
            )
            await self._metrics_http.start()
            self._stack.push_async_callback(self._metrics_http.stop)
        log.info(
            "memory ready",
            topics=self._worker.topics,
            group=settings.group_id,
            collection=self._store.collection,
            model=embedder.name,
        )

    def app(self) -> FastAPI:
        """The HTTP app: the memory API and the probes."""
        assert self._store is not None and self._knowledge is not None
        assert self._embedder is not None
        backends = MemoryBackends(self._store, self._knowledge, self._embedder)
        return memory_app(
            backends,
            self.settings,
            self._ready_checks,
            with_metrics=self.settings.metrics_port is None,
        )

    async def _sample_ready(
        self, qdrant: Qdrant, stamp: ModelStamp, embedder: TextEmbedder
    ) -> None:
        """Load the bundled pages into an empty knowledge collection; rebuild a collection
        that holds nothing else when its lexical index is of an older release (its words
        are not those the questions are cut into: search would find less)."""
        assert self._knowledge is not None
        if await self._knowledge.count() == 0:
            await self._load_sample(self._knowledge, embedder)
            return
        root = sample_source().root
        if await self._knowledge.lexical(warn=False) or await self._knowledge.count(
            except_root=root
        ):
            return
        name = self.settings.knowledge_collection
        concrete = await new_knowledge_collection(qdrant, name, stamp)
        await self._load_sample(KnowledgeStore(qdrant, concrete), embedder)
        await switch_knowledge_collection(qdrant, name, concrete)
        self._knowledge = KnowledgeStore(qdrant, name)
        log.info("sample knowledge base rebuilt with the current lexical index", collection=name)

    async def _load_sample(self, knowledge: KnowledgeStore, embedder: TextEmbedder) -> None:
        """Ingest the bundled bookstore pages (first start of `make run`)."""
        source = sample_source()
        ingestor = Ingestor(
            knowledge,
            embedder,
            max_chars=self.settings.chunk_max_chars,
            overlap_chars=self.settings.chunk_overlap_chars,
        )
        report = await ingestor.ingest(source.root, source.items())
        log.info("sample knowledge base loaded", documents=report.documents, chunks=report.chunks)

    async def _ready_checks(self) -> dict[str, bool]:
        qdrant = False
        if self._store is not None:
            try:
                qdrant = await self._store.ping()
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
                log.warning("qdrant not answering", error=repr(exc)[:300])
        return {"consumer": self._task is not None and not self._task.done(), "qdrant": qdrant}

    async def _stop_worker(self) -> None:
        if self._worker is None or self._task is None:
            return
        self._worker.request_stop()
        grace = self.settings.shutdown_grace_s
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            log.warning("shutdown grace over, abandoning the batch in flight", grace_s=grace)
            self._task.cancel()
        # Its failure, if any, was logged when it ended; shutting down goes on regardless,
        # and a task that misses its cancellation is cancelled again, then abandoned.
        await stop_task(self._task, name="memory-worker", timeout_s=STOP_TIMEOUT_S)

    @property
    def port(self) -> int:
        """The bound HTTP port."""
        if self._http is None:
            raise RuntimeError("MemoryService is not started")
        return self._http.port

    @property
    def metrics_port(self) -> int:
        """The bound metrics port (MEMORY_METRICS_PORT)."""
        if self._metrics_http is None:
            raise RuntimeError("MemoryService serves no separate metrics port")
        return self._metrics_http.port

    @property
    def store(self) -> TurnStore:
        """The Qdrant store (for the HTTP API and tests)."""
        if self._store is None:
            raise RuntimeError("MemoryService is not started")
        return self._store

    async def wait(self, stop: asyncio.Event) -> None:
        """Return once `stop` is set; raise `WorkerStoppedError` if the worker ends first."""
        if self._task is None:
            raise RuntimeError("MemoryService is not started")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({stopping, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not stop.is_set():
            error = None if self._task.cancelled() else self._task.exception()
            raise WorkerStoppedError("the memory worker stopped unexpectedly") from error


def _log_worker_end(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("memory worker failed", exc_info=error)


async def serve(settings: MemorySettings, stop: asyncio.Event) -> None:
    """Run the memory service until `stop` is set (the CLI sets it on SIGTERM/SIGINT)."""
    async with MemoryService(settings) as service:
        await service.wait(stop)
