"""Ingesting a source (a folder, a file, a Confluence space, the sample) into the store.

A source is a *root*: everything ingested from it is tagged with it. Re-ingesting a root
skips documents whose content hash is unchanged, replaces changed ones, adds new ones and
removes the ones that are gone from the root. A document that fails to load is reported
and its earlier version (if any) is kept; nothing else stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from tidings.common.logging import get_logger
from tidings.memory.embedder import TextEmbedder, embed_async
from tidings.memory.knowledge.chunking import chunk_document
from tidings.memory.knowledge.documents import (
    Document,
    DocumentError,
    discover,
    document_id,
    load_file,
)
from tidings.memory.knowledge.store import KnowledgeStore

log = get_logger(__name__)

SAMPLE_ROOT = "sample:bookstore"


@dataclass(frozen=True, slots=True)
class Failure:
    """A document that could not be ingested, and why."""

    root: str
    key: str
    source: str
    reason: str

    @property
    def doc_id(self) -> str:
        return document_id(self.root, self.key)


Item = Document | Failure


@dataclass(slots=True)
class IngestReport:
    """What one run did, per root and in total."""

    documents: int = 0  # new or changed, now stored
    chunks: int = 0  # chunks written for those documents
    skipped: int = 0  # unchanged since the last run
    deleted: int = 0  # gone from their root, removed
    failed: list[Failure] = field(default_factory=list)

    def add(self, other: IngestReport) -> None:
        self.documents += other.documents
        self.chunks += other.chunks
        self.skipped += other.skipped
        self.deleted += other.deleted
        self.failed.extend(other.failed)


class Ingestor:
    """Chunks, embeds and stores documents, one root at a time."""

    def __init__(
        self,
        store: KnowledgeStore,
        embedder: TextEmbedder,
        *,
        max_chars: int,
        overlap_chars: int,
        on_item: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._max_chars = max_chars
        self._overlap_chars = overlap_chars
        self._on_item = on_item or (lambda _source: None)

    async def ingest(
        self,
        root: str,
        items: AsyncIterable[Item] | Iterable[Item],
        *,
        complete: bool | Callable[[], bool] = True,
    ) -> IngestReport:
        """Bring the store in line with `items` for `root`.

        `complete` says `items` listed the whole root (a folder walk, a space listing that
        reached its end; a callable is asked once `items` is exhausted): only then are the
        stored documents it did not list deleted.
        """
        report = IngestReport()
        stored = await self._store.documents(root)
        seen: set[str] = set()
        async for item in _aiter(items):
            seen.add(item.doc_id)
            try:
                if isinstance(item, Failure):
                    report.failed.append(item)
                elif (old := stored.get(item.doc_id)) and old.content_hash == item.content_hash:
                    report.skipped += 1
                else:
                    report.chunks += await self._store_document(item)
                    report.documents += 1
            finally:
                self._on_item(item.source)
        whole = complete() if callable(complete) else complete
        gone = [doc_id for doc_id in stored if doc_id not in seen] if whole else []
        await self._store.delete_documents(gone)
        report.deleted = len(gone)
        log.info(
            "ingested",
            root=root,
            documents=report.documents,
            chunks=report.chunks,
            skipped=report.skipped,
            deleted=report.deleted,
            failed=len(report.failed),
        )
        return report

    async def _store_document(self, document: Document) -> int:
        chunks = chunk_document(
            document, max_chars=self._max_chars, overlap_chars=self._overlap_chars
        )
        vectors = await embed_async(self._embedder, [c.embedding_text() for c in chunks])
        await self._store.replace(document, chunks, vectors)
        return len(chunks)


async def _aiter(items: AsyncIterable[Item] | Iterable[Item]) -> AsyncIterator[Item]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


# --- Sources ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileSource:
    """A file or folder given on the command line: one root, its files listed up front."""

    root: str
    files: list[tuple[Path, str]]  # (path, key within the root)
    missing: str | None = None  # the path does not exist
    label: str | None = None  # shown as the source instead of the full path

    @classmethod
    def of(cls, path: Path) -> FileSource:
        resolved = path.expanduser().resolve()
        root = f"files:{resolved}"
        if not resolved.exists():
            return cls(root, [], missing=str(path))
        if resolved.is_file():
            return cls(root, [(resolved, resolved.name)])
        return cls(root, [(f, f.relative_to(resolved).as_posix()) for f in discover(resolved)])

    def items(self) -> Iterator[Item]:
        if self.missing is not None:
            yield Failure(self.root, "", self.missing, "no such file or directory")
            return
        for path, key in self.files:
            try:
                document = load_file(path, root=self.root, key=key)
                if self.label is not None:
                    document = replace(document, source=f"{self.label}/{key}")
                yield document
            except DocumentError as exc:
                yield Failure(self.root, key, str(path), str(exc))

    @property
    def complete(self) -> bool:
        return self.missing is None

    @property
    def total(self) -> int:
        """How many items `items` yields."""
        return len(self.files) if self.missing is None else 1


def sample_source() -> FileSource:
    """The bookstore's sample knowledge base shipped with the package."""
    folder = resources.files("tidings.memory") / "sample_kb"
    with resources.as_file(folder) as path:
        files = [(f, f.name) for f in discover(Path(path))]
    return FileSource(SAMPLE_ROOT, files, label="sample_kb")
