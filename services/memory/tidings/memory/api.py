"""The memory API (FastAPI), with the probes: what the responder and the gateway ask.

- `GET /context?session_id=&query=&user=`: recent turns of the session, earlier turns
  related to the query (this session's, or this user's when a user is given; never another
  user's: the filter runs inside Qdrant), and knowledge chunks, within a character budget;
  `evidence=true` scores every sentence of those chunks (and returns them outside the
  budget: they are the answer engine's candidates, not prompt text), `chunks=N` asks for N
  chunks instead of MEMORY_CONTEXT_KNOWLEDGE_CHUNKS, `vector=true` adds the query vector.
- `POST /embed`: `{"texts": [...]}` -> the model's unit vectors (the responder's FAQ routing).
- `GET /sessions/{session_id}/messages?user=&limit=&cursor=&message_id=`: a page of the
  session's turns in order, only when the session is the caller's (`user`, or anonymous
  without it); 404 otherwise, as for a session that does not exist.
- `GET /sessions/{session_id}/owner`: whether the session has stored turns, and whose.
- `GET /health`, `/ready`, `/metrics` (on MEMORY_METRICS_PORT instead when that is set).

A session belongs to the user of its earliest stored question (None: anonymous), so
ownership is as durable as the turns. `/context` for a session that is not the caller's
gives no turns of it.

With MEMORY_API_TOKEN every data route needs `Authorization: Bearer <token>` (401
otherwise). Bad parameters get a 422 `{"error": {"code", "message"}}`; a Qdrant failure a 503.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from pydantic import BaseModel, Field

from tidings.common.http_errors import ApiError, install_error_handlers
from tidings.common.logging import get_logger
from tidings.common.memory_api import Context, Embeddings, SessionMessages, SessionOwner
from tidings.common.ops import ReadyCheck, ops_app
from tidings.common.service_auth import bearer_matches
from tidings.memory import metrics
from tidings.memory.context import api_turn, within_budget
from tidings.memory.embedder import TextEmbedder, embed_async
from tidings.memory.evidence import VectorCache, with_evidence
from tidings.memory.knowledge.store import KnowledgeStore
from tidings.memory.settings import MemorySettings
from tidings.memory.store import TurnStore
from tidings.memory.turns import Turn

log = get_logger(__name__)

# Most knowledge chunks one /context request may ask for (`chunks=`).
MAX_KNOWLEDGE_CHUNKS = 50

SessionId = Annotated[str, Path(min_length=1, max_length=200, description="Conversation id.")]
User = Annotated[
    str | None,
    Query(max_length=200, description="Authenticated subject; omit for anonymous callers."),
]


class EmbedRequest(BaseModel):
    """`POST /embed`: at most 256 texts of at most 2,000 characters each."""

    texts: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        min_length=1, max_length=256
    )


@dataclass(frozen=True, slots=True)
class MemoryBackends:
    """What the API reads: the two stores and the model that embeds queries."""

    turns: TurnStore
    knowledge: KnowledgeStore
    embedder: TextEmbedder


def memory_app(
    backends: MemoryBackends,
    settings: MemorySettings,
    ready: ReadyCheck,
    *,
    with_metrics: bool = True,
) -> FastAPI:
    """The memory service's HTTP app (`/metrics` too unless `with_metrics` is False)."""
    app = FastAPI(title="Tidings memory", version="1", docs_url=None, redoc_url=None)
    # Every data route sits behind the service credential; the probes do not.
    data = APIRouter(dependencies=[Depends(_credential_check(settings))], responses=_DATA_ERRORS)

    vectors = VectorCache()

    @data.post("/embed", response_model=Embeddings)
    async def embed(body: EmbedRequest) -> Embeddings:
        """Unit-length vectors of `texts` (the responder routes FAQ questions with them)."""
        try:
            found = await embed_async(backends.embedder, body.texts)
        except Exception as exc:
            raise _unavailable(exc) from exc
        return Embeddings(model=backends.embedder.name, vectors=found)

    @data.get("/context", response_model=Context)
    async def context(
        session_id: Annotated[str, Query(min_length=1, max_length=200)],
        query: Annotated[str, Query(min_length=1, max_length=10_000)],
        user: User = None,
        evidence: Annotated[
            bool, Query(description="Score each sentence of the knowledge chunks.")
        ] = False,
        vector: Annotated[bool, Query(description="Return the query's embedding.")] = False,
        chunks: Annotated[
            int | None,
            Query(
                ge=0,
                le=MAX_KNOWLEDGE_CHUNKS,
                description="Knowledge chunks to return (default MEMORY_CONTEXT_KNOWLEDGE_CHUNKS).",
            ),
        ] = None,
    ) -> Context:
        """What to add to a prompt answering `query` in `session_id`."""
        started = time.perf_counter()
        try:
            [vector_] = await embed_async(backends.embedder, [query])
            owned = (await backends.turns.owner(session_id)).allows(user)
            recent: list[Turn] = []
            if owned:
                recent = await backends.turns.recent(session_id, settings.context_recent_turns)
            related = await backends.turns.related(
                vector_,
                session_id=session_id if owned else None,
                user=user or None,
                exclude=[t.point_id for t in recent],
                limit=settings.context_related_turns,
                min_score=settings.related_min_score,
            )
            knowledge = await backends.knowledge.search(
                vector_,
                limit=settings.context_knowledge_chunks if chunks is None else chunks,
                min_score=settings.knowledge_min_score,
                text=query,
            )
            if evidence:
                knowledge = await with_evidence(knowledge, vector_, backends.embedder, vectors)
        except Exception as exc:
            raise _unavailable(exc) from exc
        # Scored evidence is for the answer engine to pick sentences from, not prompt text:
        # it is returned whole, and only the turns share the character budget.
        budgeted = [] if evidence else knowledge
        result = within_budget(
            session_id, recent, related, budgeted, max_chars=settings.context_max_chars
        )
        if evidence:
            result = result.model_copy(update={"knowledge": knowledge})
        if vector:
            result = result.model_copy(update={"query_vector": vector_})
        metrics.CONTEXT_SECONDS.observe(time.perf_counter() - started)
        return result

    @data.get(
        "/sessions/{session_id}/messages",
        response_model=SessionMessages,
        responses={404: {"description": "Not the caller's session (`session_not_found`)."}},
    )
    async def session_messages(
        session_id: SessionId,
        user: User = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Turns per page.")] = PAGE,
        cursor: Annotated[
            str | None,
            Query(max_length=40, pattern=r"^[0-9]+(\.[0-9]+)?$", description="`next_cursor`."),
        ] = None,
        message_id: Annotated[
            str | None, Query(min_length=1, max_length=200, description="Only this message.")
        ] = None,
    ) -> SessionMessages:
        """A page of the session's turns, oldest first; `next_cursor` asks for the next one."""
        try:
            owner = await backends.turns.owner(session_id)
            if not owner.allows(user):
                raise ApiError(404, "session_not_found", "No such session for this caller.")
            turns, after = await backends.turns.page(
                session_id,
                limit=limit,
                after=float(cursor) if cursor else None,
                message_id=message_id,
            )
        except ApiError:
            raise
        except Exception as exc:
            raise _unavailable(exc) from exc
        return SessionMessages(
            session_id=session_id,
            messages=[api_turn(t) for t in turns],
            next_cursor=None if after is None else repr(after),
        )

    @data.get("/sessions/{session_id}/owner", response_model=SessionOwner)
    async def session_owner(session_id: SessionId) -> SessionOwner:
        """Whether the session has stored turns and which user owns it (null: anonymous)."""
        try:
            owner = await backends.turns.owner(session_id)
        except Exception as exc:
            raise _unavailable(exc) from exc
        return SessionOwner(session_id=session_id, exists=owner.exists, user=owner.user)

    app.include_router(data)
    install_error_handlers(app)
    ops = ops_app("memory", ready).routes
    app.router.routes.extend(r for r in ops if with_metrics or getattr(r, "path", "") != "/metrics")
    return app


PAGE = 100
MAX_PAGE = 500
_DATA_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not valid JSON."},
    401: {"description": "MEMORY_API_TOKEN is set and the request does not carry it."},
    503: {"description": "Qdrant is not answering (`memory_unavailable`)."},
}


def _credential_check(settings: MemorySettings) -> Callable[[Request], Awaitable[None]]:
    """The dependency every data route has: 401 unless the request carries the token."""
    token = settings.api_token

    async def check(request: Request) -> None:
        if token is not None and not bearer_matches(request.headers.get("authorization"), token):
            raise ApiError(
                401,
                "unauthorized",
                "This service needs its credential (MEMORY_API_TOKEN) as a bearer token.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def _unavailable(exc: Exception) -> ApiError:
    log.warning("qdrant request failed", error=repr(exc)[:300])
    return ApiError(503, "memory_unavailable", "the memory store is not answering; try again")
