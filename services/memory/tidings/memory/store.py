"""Conversation turns in Qdrant: one point per turn, found again by session, user or meaning.

Works the same against a Qdrant server (`QDRANT_URL`) and qdrant-client's local mode on
disk (`QDRANT_PATH`). Local mode does its work (SQLite, one commit per point) inside the
calling thread, so every call runs on the store's own thread rather than on the event
loop; one thread in local mode, which is not thread-safe and holds an exclusive lock on
its folder until closed. The store is only ever used inside `open_store`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models

from tidings.common.logging import get_logger
from tidings.common.settings import QdrantSettings
from tidings.memory.collection import (
    EmbeddingModelMismatchError,
    ModelStamp,
    VectorSizeMismatchError,
    ensure_collection,
)
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

__all__ = [
    "EmbeddingModelMismatchError",
    "ModelStamp",
    "Qdrant",
    "QdrantLockedError",
    "TurnStore",
    "VectorSizeMismatchError",
    "open_qdrant",
    "open_store",
]


class Qdrant:
    """One Qdrant client and the thread(s) it is used on, shared by the stores of a process.

    Local mode allows one client per folder per process, so the turn store and the
    knowledge store of the memory service share this one.
    """

    def __init__(self, client: QdrantClient, executor: ThreadPoolExecutor, *, local: bool) -> None:
        self.client = client
        self.local = local
        self._executor = executor

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking client call on the client's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(call, *args, **kwargs))

    async def ensure_collection(
        self,
        name: str,
        stamp: ModelStamp,
        indexes: Mapping[str, models.PayloadSchemaType],
        *,
        sparse: Mapping[str, models.SparseVectorParams] | None = None,
    ) -> str:
        """Check (or create) the collection behind alias `name`; see `collection`."""
        return await self.run(
            ensure_collection, self.client, name, stamp, indexes, local=self.local, sparse=sparse
        )


class TurnStore:
    """Reads and writes turns in one Qdrant collection (an alias, or a concrete one)."""

    def __init__(self, qdrant: Qdrant, collection: str) -> None:
        self._qdrant = qdrant
        self._client = qdrant.client
        self._run = qdrant.run
        self.collection = collection

    async def ensure_collection(self, stamp: ModelStamp) -> None:
        """Create the collection (cosine, the model's size, indexes) or check the existing one.

        Refuses a collection built by another embedding model or with another vector size.
        """
        await self._qdrant.ensure_collection(self.collection, stamp, PAYLOAD_INDEXES)

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
        session = _session_filter(session_id)
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

    async def owner(self, session_id: str) -> SessionOwnership:
        """Who owns a session, durably: the user of its earliest stored question.

        First writer wins, as at the gateway; a session without stored turns belongs to
        nobody yet. Ownership lives with the turns, so it outlasts the topic's retention and
        every gateway replica's cache.
        """
        asked = models.Filter(
            must=[
                *_session_conditions(session_id),
                models.FieldCondition(key="role", match=models.MatchValue(value="user")),
            ]
        )
        points, _ = await self._run(
            self._client.scroll,
            self.collection,
            scroll_filter=asked,
            limit=1,
            order_by=models.OrderBy(key="ts_epoch", direction=models.Direction.ASC),
            with_payload=["user"],
            with_vectors=False,
        )
        if not points:
            # Only answers stored so far (their question is still on its way): they carry
            # the asker once it is linked.
            points, _ = await self._run(
                self._client.scroll,
                self.collection,
                scroll_filter=_session_filter(session_id),
                limit=1,
                with_payload=["user"],
                with_vectors=False,
            )
        if not points:
            return SessionOwnership(exists=False, user=None)
        user = (points[0].payload or {}).get("user")
        return SessionOwnership(exists=True, user=str(user) if user else None)

    async def page(
        self,
        session_id: str,
        *,
        limit: int,
        after: float | None = None,
        message_id: str | None = None,
    ) -> tuple[list[Turn], float | None]:
        """At most `limit` turns of a session after time `after`, oldest first, and the cursor
        of the next page (None: no more). With `message_id`, that message's turns only.

        The page never splits turns stored at the same instant, so a cursor (a time) loses
        nothing.
        """
        conditions = _session_conditions(session_id)
        if message_id is not None:
            conditions.append(
                models.FieldCondition(key="message_id", match=models.MatchValue(value=message_id))
            )
        if after is not None:
            conditions.append(models.FieldCondition(key="ts_epoch", range=models.Range(gt=after)))
        points, _ = await self._run(
            self._client.scroll,
            self.collection,
            scroll_filter=models.Filter(must=conditions),
            limit=limit + 1,
            order_by=models.OrderBy(key="ts_epoch", direction=models.Direction.ASC),
            with_payload=True,
            with_vectors=False,
        )
        turns = sorted(
            (Turn.from_payload(dict(p.payload or {})) for p in points), key=Turn.sort_key
        )
        if len(turns) <= limit:
            return turns, None
        page = turns[:limit]
        last = page[-1].ts.timestamp()
        if turns[limit].ts.timestamp() == last:
            whole = [t for t in page if t.ts.timestamp() != last]
            page = whole or page
        return page, page[-1].ts.timestamp()

    async def recent(self, session_id: str, limit: int) -> list[Turn]:
        """The latest `limit` turns of a session, oldest first."""
        if limit <= 0:
            return []
        points, _ = await self._run(
            self._client.scroll,
            self.collection,
            scroll_filter=_session_filter(session_id),
            limit=limit,
            order_by=models.OrderBy(key="ts_epoch", direction=models.Direction.DESC),
            with_payload=True,
            with_vectors=False,
        )
        return sorted((Turn.from_payload(dict(p.payload or {})) for p in points), key=Turn.sort_key)

    async def related(
        self,
        vector: Sequence[float],
        *,
        session_id: str | None,
        user: str | None,
        exclude: Sequence[str],
        limit: int,
        min_score: float,
    ) -> list[tuple[Turn, float]]:
        """Turns closest to `vector` from this session or, when `user` is given, that user.

        The filter is applied inside Qdrant, so another user's turns are never even read:
        a turn qualifies by its session id, or by its user field equal to `user`. Anonymous
        callers (no user) get their own session only. `exclude` holds point ids already
        in the context (the recent turns). `session_id` None: the session is not the
        caller's, so only the user's own turns qualify.
        """
        scope: list[models.Condition] = []
        if session_id is not None:
            scope.extend(_session_conditions(session_id))
        if user:
            scope.append(models.FieldCondition(key="user", match=models.MatchValue(value=user)))
        if limit <= 0 or not scope:
            return []
        query_filter = models.Filter(
            should=scope,
            must_not=[models.HasIdCondition(has_id=list(exclude))] if exclude else None,
        )
        result = await self._run(
            self._client.query_points,
            self.collection,
            query=list(vector),
            query_filter=query_filter,
            limit=limit,
            score_threshold=min_score,
            with_payload=True,
        )
        return [(Turn.from_payload(dict(p.payload or {})), p.score) for p in result.points]

    async def count(self) -> int:
        """How many turns the collection holds."""
        result = await self._run(self._client.count, self.collection, exact=True)
        return result.count

    async def ping(self) -> bool:
        """True when Qdrant answers (for the readiness probe)."""
        return await self._run(self._client.collection_exists, self.collection)


@asynccontextmanager
async def open_qdrant(settings: QdrantSettings) -> AsyncIterator[Qdrant]:
    """A Qdrant client on its own thread(s); closed on exit (releasing local mode's lock).

    Server mode when `settings.url` is set, else local mode in `settings.path`.
    """
    local = settings.url is None
    where = str(settings.path) if local else str(settings.url)
    executor = ThreadPoolExecutor(
        max_workers=1 if local else _SERVER_THREADS, thread_name_prefix="qdrant"
    )
    loop = asyncio.get_running_loop()
    try:
        if local:
            _check_not_locked(settings.path, where)
        # Created on the store's thread: local mode's SQLite connections belong to it.
        client = await loop.run_in_executor(executor, partial(_connect, settings))
        try:
            log.debug("qdrant open", qdrant=where)
            yield Qdrant(client, executor, local=local)
        finally:
            # Releases local mode's lock on the folder, so the next process can open it.
            await loop.run_in_executor(executor, client.close)
    finally:
        executor.shutdown(wait=False)


@asynccontextmanager
async def open_store(settings: QdrantSettings, stamp: ModelStamp) -> AsyncIterator[TurnStore]:
    """A turn store whose collection is ready for `stamp`'s vectors; closed on exit."""
    async with open_qdrant(settings) as qdrant:
        store = TurnStore(qdrant, settings.collection)
        await store.ensure_collection(stamp)
        log.info("qdrant ready", collection=settings.collection, model=stamp.model)
        yield store


def _check_not_locked(path: Path, where: str) -> None:
    """Fail early and clearly when another process holds local mode's folder.

    qdrant-client finds out only after loading every collection, and then leaves its lock
    file open; trying the same lock first (and letting go at once) avoids both.
    """
    import portalocker

    lock_path = path / ".lock"
    if not lock_path.exists():
        return
    with lock_path.open("r+") as lock_file:
        try:
            portalocker.lock(
                lock_file, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING
            )
        except portalocker.exceptions.LockException:
            raise QdrantLockedError(
                f"Qdrant local storage {where} is in use by another process (a running memory "
                "worker?). Local mode allows one process per folder: stop it, or use a Qdrant "
                "server (QDRANT_URL)."
            ) from None
        portalocker.unlock(lock_file)


def _session_conditions(session_id: str) -> list[models.Condition]:
    return [models.FieldCondition(key="session_id", match=models.MatchValue(value=session_id))]


def _session_filter(session_id: str) -> models.Filter:
    return models.Filter(must=_session_conditions(session_id))


@dataclass(frozen=True, slots=True)
class SessionOwnership:
    """Whether a session has stored turns, and the user who owns it (None: anonymous)."""

    exists: bool
    user: str | None

    def allows(self, user: str | None) -> bool:
        """True when `user` (None: an anonymous caller) may read or continue the session."""
        return not self.exists or self.user == (user or None)


class QdrantLockedError(RuntimeError):
    """Local mode's folder is held by another process."""


def _connect(settings: QdrantSettings) -> QdrantClient:
    if settings.url:
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        return QdrantClient(url=settings.url, api_key=api_key)
    settings.path.mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.path))
