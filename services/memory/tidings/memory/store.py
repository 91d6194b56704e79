"""Conversation turns in Qdrant: one point per turn, found again by session, user or meaning.

Works the same against a Qdrant server (`QDRANT_URL`) and qdrant-client's local mode on
disk (`QDRANT_PATH`). Local mode does its work (SQLite, one commit per point) inside the
calling thread, so every call runs on the store's own thread rather than on the event
loop; one thread in local mode, which is not thread-safe and holds an exclusive lock on
its folder until closed. The store is only ever used inside `open_store`.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models

from tidings.common.logging import get_logger
from tidings.common.settings import QdrantSettings
from tidings.memory.turns import Turn

log = get_logger(__name__)

# Payload fields that filters use: sessions and users for context lookups, role to pick
# answers, the epoch time for ranges and ordering.
PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    "session_id": models.PayloadSchemaType.KEYWORD,
    "user": models.PayloadSchemaType.KEYWORD,
    "role": models.PayloadSchemaType.KEYWORD,
    "ts_epoch": models.PayloadSchemaType.FLOAT,
}
_SCROLL_PAGE = 256
_SERVER_THREADS = 4
T = TypeVar("T")


class VectorSizeMismatchError(RuntimeError):
    """The collection holds vectors of another size than the embedding model produces."""


class TurnStore:
    """Reads and writes turns in one Qdrant collection."""

    def __init__(
        self, client: QdrantClient, executor: ThreadPoolExecutor, collection: str, *, local: bool
    ) -> None:
        self._client = client
        self._executor = executor
        self.collection = collection
        self._local = local

    async def _run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(call, *args, **kwargs))

    async def ensure_collection(self, dimension: int) -> None:
        """Create the collection (cosine, `dimension`) and its indexes, or check the existing one.

        Refuses to run against a collection of another vector size: mixing vectors of two
        models would make every similarity meaningless.
        """
        if await self._run(self._client.collection_exists, self.collection):
            size = await self.vector_size()
            if size != dimension:
                raise VectorSizeMismatchError(
                    f"Qdrant collection {self.collection!r} stores {size}-dimensional vectors "
                    f"but the embedding model produces {dimension}. Use another collection "
                    "(QDRANT_COLLECTION) or the model it was built with."
                )
            return
        await self._run(
            self._client.create_collection,
            self.collection,
            vectors_config=models.VectorParams(size=dimension, distance=models.Distance.COSINE),
        )
        for field_name, schema in PAYLOAD_INDEXES.items():
            await self._create_index(field_name, schema)
        log.info("collection created", collection=self.collection, dim=dimension)

    async def _create_index(self, field_name: str, schema: models.PayloadSchemaType) -> None:
        await self._run(self._create_index_sync, field_name, schema)

    def _create_index_sync(self, field_name: str, schema: models.PayloadSchemaType) -> None:
        if not self._local:
            self._client.create_payload_index(self.collection, field_name, schema)
            return
        # Local mode keeps the index definition but scans instead of using it, and says so
        # with a UserWarning. The indexes are still created so the collection is the same
        # shape in both modes; only that one message is silenced.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Payload indexes have no effect in the local Qdrant"
            )
            self._client.create_payload_index(self.collection, field_name, schema)

    async def vector_size(self) -> int:
        """The vector size of the existing collection."""
        info = await self._run(self._client.get_collection, self.collection)
        vectors = info.config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise VectorSizeMismatchError(
                f"Qdrant collection {self.collection!r} uses named vectors; memory needs a "
                "collection with a single unnamed vector."
            )
        return vectors.size

    async def upsert(self, turns: Sequence[Turn], vectors: Sequence[Sequence[float]]) -> None:
        """Write turns with their vectors; a turn already stored is overwritten, not repeated."""
        if len(turns) != len(vectors):
            raise ValueError(f"{len(turns)} turns but {len(vectors)} vectors")
        if not turns:
            return
        await self._run(
            self._client.upsert,
            self.collection,
            points=[
                models.PointStruct(id=turn.point_id, vector=list(vector), payload=turn.payload())
                for turn, vector in zip(turns, vectors, strict=True)
            ],
            wait=True,
        )

    async def link_users(self, turns: Sequence[Turn]) -> int:
        """Attribute stored answers to the user who asked, whichever turn arrived last.

        Answers do not name the user; their question does. Questions and answers travel on
        different topics, so either may be stored first. Run after `upsert`: each side
        looks for its stored partner, so at least one of two racing writers sees the other.
        Returns how many answers were updated.
        """
        # partner point id -> the turn just written that wants to know about it
        wanted = {
            t.partner_point_id: t
            for t in turns
            if (t.role == "assistant" and t.user is None) or (t.role == "user" and t.user)
        }
        if not wanted:
            return 0
        found = await self._run(
            self._client.retrieve, self.collection, ids=list(wanted), with_payload=["user"]
        )
        updates: dict[str, list[models.ExtendedPointId]] = {}  # user -> answers to attribute
        for point in found:
            turn = wanted[str(point.id)]
            partner_user = (point.payload or {}).get("user")
            if turn.role == "assistant" and partner_user is not None:
                updates.setdefault(str(partner_user), []).append(turn.point_id)
            elif turn.role == "user" and turn.user and partner_user is None:
                updates.setdefault(turn.user, []).append(str(point.id))
        for user, point_ids in updates.items():
            await self._run(
                self._client.set_payload,
                self.collection,
                payload={"user": user},
                points=point_ids,
                wait=True,
            )
        return sum(len(ids) for ids in updates.values())

    async def session_turns(self, session_id: str, *, page_size: int = _SCROLL_PAGE) -> list[Turn]:
        """Every stored turn of a session, oldest first (a question before its answer).

        Read `page_size` points per request.
        """
        session = models.Filter(
            must=[
                models.FieldCondition(key="session_id", match=models.MatchValue(value=session_id))
            ]
        )
        turns: list[Turn] = []
        offset: Any = None
        while True:
            points, offset = await self._run(
                self._client.scroll,
                self.collection,
                scroll_filter=session,
                limit=page_size,
                offset=offset,
                with_payload=True,
                with_vectors=False,
            )
            turns.extend(Turn.from_payload(dict(p.payload or {})) for p in points)
            if offset is None:
                break
        return sorted(turns, key=Turn.sort_key)

    async def count(self) -> int:
        """How many turns the collection holds."""
        result = await self._run(self._client.count, self.collection, exact=True)
        return result.count

    async def ping(self) -> bool:
        """True when Qdrant answers (for the readiness probe)."""
        return await self._run(self._client.collection_exists, self.collection)


@asynccontextmanager
async def open_store(settings: QdrantSettings, dimension: int) -> AsyncIterator[TurnStore]:
    """A store whose collection is ready for `dimension`-sized vectors; closed on exit.

    Server mode when `settings.url` is set, else local mode in `settings.path`.
    """
    local = settings.url is None
    where = str(settings.path) if local else str(settings.url)
    executor = ThreadPoolExecutor(
        max_workers=1 if local else _SERVER_THREADS, thread_name_prefix="qdrant"
    )
    loop = asyncio.get_running_loop()
    try:
        # Created on the store's thread: local mode's SQLite connections belong to it.
        client = await loop.run_in_executor(executor, partial(_connect, settings))
        try:
            store = TurnStore(client, executor, settings.collection, local=local)
            await store.ensure_collection(dimension)
            log.info("qdrant ready", qdrant=where, collection=settings.collection)
            yield store
        finally:
            # Releases local mode's lock on the folder, so the next process can open it.
            await loop.run_in_executor(executor, client.close)
    finally:
        executor.shutdown(wait=False)


def _connect(settings: QdrantSettings) -> QdrantClient:
    if settings.url:
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        return QdrantClient(url=settings.url, api_key=api_key)
    settings.path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.path))
