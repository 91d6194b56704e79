"""Context from the memory service, and what happens when it is not there.

Answers never wait on a missing memory service: `MemoryClient` returns None when memory is
disabled (MEMORY_URL empty) or failing, and the answer goes on without context. The outage
is logged once when it starts and once when memory is back, and while it lasts the
service is asked again only every `retry_s` seconds, so a slow or dead memory service does
not add its timeout to every answer.
"""

from __future__ import annotations

import time

from tidings.common.logging import get_logger
from tidings.common.memory_api import Context, MemoryClient
from tidings.responder.coalesce import Clock

log = get_logger(__name__)


class ContextSource:
    """Fetches `Context` for a question through `MemoryClient`, tolerating its absence."""

    def __init__(
        self, client: MemoryClient | None, *, retry_s: float = 5.0, clock: Clock = time.monotonic
    ) -> None:
        self._client = client
        self._retry_s = retry_s
        self._clock = clock
        self._down_since: float | None = None
        self._next_try = 0.0

    @property
    def enabled(self) -> bool:
        return self._client is not None and self._client.enabled

    @property
    def available(self) -> bool:
        """False while the memory service is considered down."""
        return self.enabled and self._down_since is None

    async def context(
        self,
        session_id: str,
        query: str,
        *,
        user: str | None,
        evidence: bool = False,
        vector: bool = False,
        chunks: int | None = None,
    ) -> Context | None:
        """The context, or None (memory off, down, or in its retry pause)."""
        client, now = self._askable()
        if client is None:
            return None
        found = await client.context(
            session_id, query, user=user, evidence=evidence, vector=vector, chunks=chunks
        )
        # One refused request (say for an unusual user) is no outage: memory stays on for
        # everyone else.
        self._note(found is not None or client.refused_last, now)
        return found

    async def embed(self, texts: list[str]) -> list[list[float]] | None:
        """The memory service's embeddings of `texts`, or None (off, down, retry pause)."""
        client, now = self._askable()
        if client is None:
            return None
        found = await client.embed(texts)
        if found is None:
            # Not an outage by itself (an older memory service has no /embed): the next
            # context request tells whether memory is down.
            return None
        self._note(True, now)
        return found.vectors

    def _askable(self) -> tuple[MemoryClient | None, float]:
        """The client when memory may be asked now (on, and not in its retry pause)."""
        now = self._clock()
        if self._client is None or not self._client.enabled:
            return None, now
        if self._down_since is not None and now < self._next_try:
            return None, now
        return self._client, now

    def _note(self, answered: bool, now: float) -> None:
        """Log the start and the end of an outage; pause asking while it lasts."""
        if not answered:
            if self._down_since is None:
                self._down_since = now
                log.warning(
                    "memory service unavailable; answering without context until it is back",
                    retry_every_s=self._retry_s,
                )
            self._next_try = self._clock() + self._retry_s
            return
        if self._down_since is not None:
            log.info("memory service is back", down_s=round(now - self._down_since, 1))
            self._down_since = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
