"""The memory API (FastAPI), with the probes: what the responder and the gateway ask.

- `GET /context?session_id=&query=&user=`: recent turns of the session, earlier turns
  related to the query (this session's, or this user's when a user is given; never another
  user's: the filter runs inside Qdrant), and knowledge chunks, within a character budget;
  `evidence=true` scores every sentence of those chunks, `vector=true` adds the query vector.
- `POST /embed`: `{"texts": [...]}` -> the model's unit vectors (the responder's FAQ routing).
- `GET /sessions/{session_id}/messages?user=`: the session's turns in order; with `user`,
  only when the session is that user's (404 otherwise, as for a session that is not theirs).
- `GET /health`, `/ready`, `/metrics`.

Bad parameters get a 422 `{"error": {"code", "message"}}`; a Qdrant failure a 503.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from tidings.common.logging import get_logger
from tidings.common.memory_api import Context, Embeddings, SessionMessages
from tidings.common.ops import ReadyCheck, ops_app
from tidings.memory import metrics
from tidings.memory.context import api_turn, within_budget
from tidings.memory.embedder import TextEmbedder, embed_async
from tidings.memory.evidence import VectorCache, with_evidence
from tidings.memory.knowledge.store import KnowledgeStore
from tidings.memory.settings import MemorySettings
from tidings.memory.store import TurnStore
from tidings.memory.turns import Turn

log = get_logger(__name__)

SessionId = Annotated[str, Path(min_length=1, max_length=200, description="Conversation id.")]
User = Annotated[
    str | None,
    Query(max_length=200, description="Authenticated subject; omit for anonymous callers."),
]


class ApiError(Exception):
    """An error with a stable code, answered as `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


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


def memory_app(backends: MemoryBackends, settings: MemorySettings, ready: ReadyCheck) -> FastAPI:
    """The memory service's HTTP app."""
    app = FastAPI(title="Tidings memory", version="1", docs_url=None, redoc_url=None)

    vectors = VectorCache()

    @app.post("/embed", response_model=Embeddings)
    async def embed(body: EmbedRequest) -> Embeddings:
        """Unit-length vectors of `texts` (the responder routes FAQ questions with them)."""
        try:
            found = await embed_async(backends.embedder, body.texts)
        except Exception as exc:
            raise _unavailable(exc) from exc
        return Embeddings(model=backends.embedder.name, vectors=found)

    @app.get("/context", response_model=Context)
    async def context(
        session_id: Annotated[str, Query(min_length=1, max_length=200)],
        query: Annotated[str, Query(min_length=1, max_length=10_000)],
        user: User = None,
        evidence: Annotated[
            bool, Query(description="Score each sentence of the knowledge chunks.")
        ] = False,
        vector: Annotated[bool, Query(description="Return the query's embedding.")] = False,
    ) -> Context:
        """What to add to a prompt answering `query` in `session_id`."""
        started = time.perf_counter()
        try:
            [vector_] = await embed_async(backends.embedder, [query])
            recent = await backends.turns.recent(session_id, settings.context_recent_turns)
            related = await backends.turns.related(
                vector_,
                session_id=session_id,
                user=user or None,
                exclude=[t.point_id for t in recent],
                limit=settings.context_related_turns,
                min_score=settings.related_min_score,
            )
            knowledge = await backends.knowledge.search(
                vector_,
                limit=settings.context_knowledge_chunks,
                min_score=settings.knowledge_min_score,
            )
            if evidence:
                knowledge = await with_evidence(knowledge, vector_, backends.embedder, vectors)
        except Exception as exc:
            raise _unavailable(exc) from exc
        result = within_budget(
            session_id, recent, related, knowledge, max_chars=settings.context_max_chars
        )
        if vector:
            result = result.model_copy(update={"query_vector": vector_})
        metrics.CONTEXT_SECONDS.observe(time.perf_counter() - started)
        return result

    @app.get("/sessions/{session_id}/messages", response_model=SessionMessages)
    async def session_messages(session_id: SessionId, user: User = None) -> SessionMessages:
        """The turns of a session, oldest first."""
        try:
            turns = await backends.turns.session_turns(session_id)
        except Exception as exc:
            raise _unavailable(exc) from exc
        if user and not belongs_to(turns, user):
            raise ApiError(404, "session_not_found", f"no session {session_id!r} for this user")
        return SessionMessages(session_id=session_id, messages=[api_turn(t) for t in turns])

    _install_error_handlers(app)
    app.router.routes.extend(ops_app("memory", ready).routes)
    return app


def belongs_to(turns: list[Turn], user: str) -> bool:
    """A session is a user's when every question in it that names a user names them.

    A session without turns yet belongs to nobody in particular (it may be about to
    start); one with anonymous questions only belongs to no signed-in user.
    """
    askers = {t.user for t in turns if t.role == "user"}
    return not turns or askers == {user}


def _unavailable(exc: Exception) -> ApiError:
    log.warning("qdrant request failed", error=repr(exc)[:300])
    return ApiError(503, "memory_unavailable", "the memory store is not answering; try again")


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.code, exc.message)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
        return _error(exc.status_code, code, str(exc.detail))

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'request'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        return _error(422, "invalid_request", problems)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
