"""Knowledge chunks in their own Qdrant collection (`MEMORY_KNOWLEDGE_COLLECTION`).

Each point is one chunk, its payload names its document (id, root, content hash), so a
re-ingest can tell which documents changed, which are new and which are gone. Each point
holds the chunk's embedding and its words (`lexical.py`); a search finds chunks by either.

A collection created before the lexical index has no sparse vector: it is searched by
meaning only, with a warning to re-ingest (`tidings ingest --recreate`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qdrant_client import models

from tidings.common.logging import get_logger
from tidings.common.memory_api import KnowledgeChunk
from tidings.memory.collection import (
    ModelStamp,
    create_collection,
    new_collection_name,
    point_alias,
    sparse_vectors,
)
from tidings.memory.knowledge.chunking import Chunk
from tidings.memory.knowledge.documents import Document
from tidings.memory.knowledge.lexical import (
    LEXICAL_VECTOR,
    SPARSE_VECTORS,
    chunk_vector,
    query_vector,
)
from tidings.memory.store import Qdrant

log = get_logger(__name__)

PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    "doc_id": models.PayloadSchemaType.KEYWORD,
    "root": models.PayloadSchemaType.KEYWORD,
    "chunk_index": models.PayloadSchemaType.INTEGER,
}
_SCROLL_PAGE = 512


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """What the collection knows of a document ingested earlier."""

    doc_id: str
    source: str
    content_hash: str


class KnowledgeStore:
    """Reads and writes knowledge chunks in one collection (an alias)."""

    def __init__(self, qdrant: Qdrant, collection: str) -> None:
        self._qdrant = qdrant
        self._client = qdrant.client
        self._run = qdrant.run
        self.collection = collection
        self._lexical: bool | None = None

    async def ensure_collection(self, stamp: ModelStamp) -> None:
        """Create the collection or check that the configured model built it."""
        await self._qdrant.ensure_collection(
            self.collection, stamp, PAYLOAD_INDEXES, sparse=SPARSE_VECTORS
        )
        self._lexical = None

    async def lexical(self, *, warn: bool = True) -> bool:
        """Whether the collection has the lexical index (asked once). Without it, searches
        go by meaning only, which is logged once; `warn=False` asks without that (the
        answer is then not kept, so the first search still warns)."""
        if self._lexical is None:
            found = LEXICAL_VECTOR in await self._run(sparse_vectors, self._client, self.collection)
            if not found:
                if not warn:
                    return False  # not kept: the first search still warns
                log.warning(
                    "the knowledge collection has no lexical index (it predates it): searching "
                    "by meaning only; run `tidings ingest --recreate` to add it",
                    collection=self.collection,
                )
            self._lexical = found
        return self._lexical

    async def documents(self, root: str) -> dict[str, StoredDocument]:
        """The documents stored for `root`, by document id."""
        found: dict[str, StoredDocument] = {}
        offset: Any = None
        of_root = models.Filter(
            must=[models.FieldCondition(key="root", match=models.MatchValue(value=root))]
        )
        while True:
            points, offset = await self._run(
                self._client.scroll,
                self.collection,
                scroll_filter=of_root,
                limit=_SCROLL_PAGE,
                offset=offset,
                with_payload=["doc_id", "source", "content_hash"],
                with_vectors=False,
            )
            for point in points:
                payload = point.payload or {}
                doc_id = str(payload["doc_id"])
                found[doc_id] = StoredDocument(
                    doc_id, str(payload.get("source", "")), str(payload.get("content_hash", ""))
                )
            if offset is None:
                return found

    async def replace(
        self, document: Document, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]
    ) -> None:
        """Store a document's chunks, replacing its earlier version.

        New chunks overwrite the old ones with the same number first, then the old
        version's extra chunks are deleted: the document is never missing in between.
        """
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        now = datetime.now(UTC).isoformat()
        content_hash = document.content_hash
        lexical = await self.lexical()
        points = [
            models.PointStruct(
                id=chunk.point_id,
                vector=(
                    {"": list(vector), LEXICAL_VECTOR: chunk_vector(chunk.title, chunk.text)}
                    if lexical
                    else list(vector)
                ),
                payload={
                    "doc_id": document.doc_id,
                    "root": document.root,
                    "key": document.key,
                    "source": document.source,
                    "url": document.url,
                    "doc_title": document.title,
                    "title": chunk.title,
                    "path": list(chunk.path),
                    "text": chunk.text,
                    "chunk_index": chunk.index,
                    "content_hash": content_hash,
                    "ingested_at": now,
                },
            )
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        if points:
            await self._run(self._client.upsert, self.collection, points=points, wait=True)
        stale = models.Filter(
            must=[
                models.FieldCondition(key="doc_id", match=models.MatchValue(value=document.doc_id)),
                models.FieldCondition(key="chunk_index", range=models.Range(gte=len(chunks))),
            ]
        )
        await self._run(
            self._client.delete,
            self.collection,
            points_selector=models.FilterSelector(filter=stale),
            wait=True,
        )

    async def delete_documents(self, doc_ids: Sequence[str]) -> None:
        """Remove every chunk of these documents."""
        if not doc_ids:
            return
        selector = models.FilterSelector(
            filter=models.Filter(
                must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(doc_ids)))]
            )
        )
        await self._run(self._client.delete, self.collection, points_selector=selector, wait=True)

    async def search(
        self, vector: Sequence[float], *, limit: int, min_score: float, text: str = ""
    ) -> list[KnowledgeChunk]:
        """The chunks closest to `vector` and, with `text`, those sharing its rarest words
        (`limit` of each, every one at least `min_score` close in meaning), closest first."""
        if limit <= 0:
            return []
        result = await self._run(
            self._client.query_points,
            self.collection,
            query=list(vector),
            limit=limit,
            score_threshold=min_score,
            with_payload=True,
        )
        found = {str(point.id): _chunk(point, point.score) for point in result.points}
        words = query_vector(text) if text else None
        if words is not None and await self.lexical():
            result = await self._run(
                self._client.query_points,
                self.collection,
                query=words,
                using=LEXICAL_VECTOR,
                limit=limit,
                with_payload=True,
                with_vectors=[""],
            )
            for point in result.points:
                if str(point.id) in found:
                    continue
                score = _cosine(vector, _dense(point.vector))
                if score >= min_score:
                    found[str(point.id)] = _chunk(point, score)
        return sorted(found.values(), key=lambda chunk: chunk.score, reverse=True)

    async def count(self, *, except_root: str | None = None) -> int:
        """How many chunks the collection holds (not counting `except_root`'s)."""
        only = None
        if except_root is not None:
            only = models.Filter(
                must_not=[
                    models.FieldCondition(key="root", match=models.MatchValue(value=except_root))
                ]
            )
        result = await self._run(self._client.count, self.collection, count_filter=only, exact=True)
        return result.count


def _chunk(point: models.ScoredPoint, score: float) -> KnowledgeChunk:
    payload = point.payload or {}
    return KnowledgeChunk(
        chunk_id=str(point.id),
        text=str(payload.get("text", "")),
        title=str(payload.get("title", "")),
        url=payload.get("url"),
        source=str(payload.get("source", "")),
        score=score,
    )


def _dense(vector: Any) -> list[float]:
    """The unnamed dense vector of a point returned with `with_vectors=[""]`."""
    if isinstance(vector, dict):
        vector = vector.get("")
    return [float(x) for x in vector] if isinstance(vector, list) else []


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=False)) / norm if norm else 0.0


async def new_knowledge_collection(qdrant: Qdrant, name: str, stamp: ModelStamp) -> str:
    """Create a fresh concrete collection for the knowledge alias `name`; its name."""
    concrete = new_collection_name(name)
    await qdrant.run(
        create_collection, qdrant.client, concrete, stamp, PAYLOAD_INDEXES,
        local=qdrant.local, sparse=SPARSE_VECTORS,
    )  # fmt: skip
    return concrete


async def switch_knowledge_collection(qdrant: Qdrant, name: str, concrete: str) -> None:
    """Point the alias `name` at `concrete` in one request and drop the collection it left."""
    previous = await qdrant.run(point_alias, qdrant.client, name, concrete)
    if previous not in (None, name):
        await qdrant.run(qdrant.client.delete_collection, previous)
