"""Knowledge chunks in their own Qdrant collection (`MEMORY_KNOWLEDGE_COLLECTION`).

Each point is one chunk, its payload names its document (id, root, content hash), so a
re-ingest can tell which documents changed, which are new and which are gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qdrant_client import models

from tidings.common.memory_api import KnowledgeChunk
from tidings.memory.collection import ModelStamp
from tidings.memory.knowledge.chunking import Chunk
from tidings.memory.knowledge.documents import Document
from tidings.memory.store import Qdrant

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

    async def ensure_collection(self, stamp: ModelStamp) -> None:
        """Create the collection or check that the configured model built it."""
        await self._qdrant.ensure_collection(self.collection, stamp, PAYLOAD_INDEXES)

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
        points = [
            models.PointStruct(
                id=chunk.point_id,
                vector=list(vector),
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
        self, vector: Sequence[float], *, limit: int, min_score: float
    ) -> list[KnowledgeChunk]:
        """The chunks closest to `vector`, best first."""
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
        return [
            KnowledgeChunk(
                chunk_id=str(point.id),
                text=str(payload.get("text", "")),
                title=str(payload.get("title", "")),
                url=payload.get("url"),
                source=str(payload.get("source", "")),
                score=point.score,
            )
            for point in result.points
            for payload in [point.payload or {}]
        ]

    async def count(self) -> int:
        """How many chunks the collection holds."""
        result = await self._run(self._client.count, self.collection, exact=True)
        return result.count
