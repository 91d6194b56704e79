"""The memory service's HTTP API: response models and the client the other services use.

The memory worker owns Qdrant; the responder asks it for context before calling the LLM and
the gateway asks it for a session's history. Both go through `MemoryClient`, which never
raises on an unreachable or failing memory service — it returns None and the caller answers
without memory (the responder logs that once).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.common.logging import get_logger
from tidings.common.service_auth import bearer_header

log = get_logger(__name__)
_M = TypeVar("_M", bound=BaseModel)


class MemoryApiSettings(BaseSettings):
    """Where the memory service's HTTP API is (for the responder and the gateway)."""

    model_config = SettingsConfigDict(env_prefix="MEMORY_", extra="ignore")

    url: str | None = Field(
        default="http://127.0.0.1:8001",
        title="Memory service URL",
        description="MEMORY_URL; empty disables memory (answers and history without it).",
    )
    timeout_s: float = Field(default=2.0, gt=0, title="Memory API timeout (s)")
    api_token: SecretStr | None = Field(
        default=None,
        title="Memory service credential",
        description="MEMORY_API_TOKEN: sent as a bearer token on every memory API request.",
    )


class Turn(BaseModel):
    """One stored conversation turn."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message_id: str
    role: Literal["user", "assistant"]
    text: str
    ts: datetime
    source: str | None = Field(default=None, description="For answers: faq, llm, tool, ...")
    score: float | None = Field(default=None, description="Similarity, for related turns.")


class Evidence(BaseModel):
    """One sentence of a knowledge chunk and how close it is to the query."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    text: str
    score: float = Field(description="Cosine similarity of the sentence (with its heading).")


class KnowledgeChunk(BaseModel):
    """A piece of a knowledge-base document."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    chunk_id: str
    text: str
    title: str = Field(description="Document title and heading path, e.g. 'Returns > Refunds'.")
    url: str | None = None
    source: str = Field(description="Where it was ingested from (file path or Confluence).")
    score: float
    sentences: list[Evidence] = Field(
        default_factory=list,
        description="The chunk's sentences in reading order, each scored against the query "
        "(only with `evidence=true`).",
    )


class Context(BaseModel):
    """`GET /context`: what the responder adds to an LLM prompt."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    session_id: str
    recent: list[Turn] = Field(default_factory=list, description="Latest turns, oldest first.")
    related: list[Turn] = Field(
        default_factory=list,
        description="Earlier turns of this session or user related to the query (never another "
        "user's), best first.",
    )
    knowledge: list[KnowledgeChunk] = Field(default_factory=list, description="Best first.")
    query_vector: list[float] | None = Field(
        default=None, description="The query's embedding (only with `vector=true`)."
    )


class Embeddings(BaseModel):
    """`POST /embed`: unit-length vectors of the texts, in order."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model: str
    vectors: list[list[float]]


class SessionMessages(BaseModel):
    """`GET /sessions/{session_id}/messages`: a page of the session's turns in order."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    session_id: str
    messages: list[Turn] = Field(default_factory=list)
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last one."
    )


class SessionOwner(BaseModel):
    """`GET /sessions/{session_id}/owner`: the durable owner of a session."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    session_id: str
    exists: bool = Field(description="The session has stored turns.")
    user: str | None = Field(
        default=None, description="The user of its earliest question (null: anonymous)."
    )


class SessionNotFoundError(LookupError):
    """The memory service has no such session for this caller (its 404)."""


class MemoryClient:
    """Async client of the memory API; create in a lifespan and `aclose()` it."""

    def __init__(
        self, settings: MemoryApiSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.enabled = bool(settings.url)
        self.refused_last = False
        """The last request was refused for what it asked (a 4xx other than 401/403): the
        service is up, so callers need not treat it as an outage."""
        self._client = httpx.AsyncClient(
            base_url=settings.url or "http://memory.invalid",
            timeout=settings.timeout_s,
            transport=transport,
            headers=bearer_header(settings.api_token),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def context(
        self,
        session_id: str,
        query: str,
        *,
        user: str | None = None,
        evidence: bool = False,
        vector: bool = False,
        chunks: int | None = None,
    ) -> Context | None:
        """Context for an answer, or None when memory is disabled or not answering.

        `evidence` scores each sentence of the knowledge chunks against `query`; `vector`
        returns the query's embedding too; `chunks` asks for that many knowledge chunks
        instead of the service's default.
        """
        params = {"session_id": session_id, "query": query}
        if chunks is not None:
            params["chunks"] = str(chunks)
        if user:
            params["user"] = user
        if evidence:
            params["evidence"] = "true"
        if vector:
            params["vector"] = "true"
        return await self._get("/context", params, Context)

    async def embed(self, texts: list[str]) -> Embeddings | None:
        """Embeddings of `texts` by the memory service's model, or None when it is not there."""
        if not self.enabled:
            return None
        try:
            response = await self._client.post("/embed", json={"texts": texts})
            response.raise_for_status()
            return Embeddings.model_validate_json(response.content)
        except (httpx.HTTPError, ValidationError) as exc:
            log.debug("memory service unavailable", path="/embed", error=repr(exc))
            return None

    async def session_messages(
        self,
        session_id: str,
        *,
        user: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        message_id: str | None = None,
    ) -> SessionMessages | None:
        """A page of a session's turns in order, or None when memory is disabled or not
        answering. Raises `SessionNotFoundError` when the session is not `user`'s."""
        params = {"user": user, "cursor": cursor, "message_id": message_id}
        if limit is not None:
            params["limit"] = str(limit)
        given = {name: value for name, value in params.items() if value}
        return await self._get(f"/sessions/{session_id}/messages", given, SessionMessages)

    async def session_owner(self, session_id: str) -> SessionOwner | None:
        """The durable owner of a session, or None when memory is disabled or not answering."""
        return await self._get(f"/sessions/{session_id}/owner", {}, SessionOwner)

    async def _get(self, path: str, params: dict[str, str], model: type[_M]) -> _M | None:
        if not self.enabled:
            return None
        self.refused_last = False
        try:
            response = await self._client.get(path, params=params)
            if response.status_code == 404 and path.startswith("/sessions/"):
                raise SessionNotFoundError(path)
            # A request the service refuses on its merits (a 422 for an over-long user) says
            # nothing about the service; a refused credential (401/403) means it cannot be used.
            status = response.status_code
            self.refused_last = 400 <= status < 500 and status not in (401, 403)
            response.raise_for_status()
            return model.model_validate_json(response.content)
        except (httpx.HTTPError, ValidationError) as exc:
            # Debug: callers decide how loudly to report an outage (the responder logs it once).
            log.debug("memory service unavailable", path=path, error=repr(exc))
            return None
