"""A simulated model for benchmarks and load tests: no weights, predictable timing.

It answers with the user's own words ("You said: ..."), repeated to `ECHO_TOKENS` words,
after `ECHO_FIRST_TOKEN_MS` and then at `ECHO_TOKENS_PER_S`. So a benchmark measures the
responder (Kafka, routing, coalescing, commits), not a model.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator

from tidings.common.events import Usage
from tidings.common.settings import LLMSettings
from tidings.responder.llm.base import Finished, LLMEvent, LLMRequest, TextChunk

ECHO_MODEL = "echo"


class EchoBackend:
    """Streams words derived from the question at a configured pace."""

    name = "echo"
    model = ECHO_MODEL

    def __init__(
        self,
        settings: LLMSettings,
        *,
        first_token_s: float = 0.0,
        tokens_per_s: float = 0.0,
        tokens: int = 12,
    ) -> None:
        self._first_token_s = first_token_s
        self._gap_s = 1.0 / tokens_per_s if tokens_per_s > 0 else 0.0
        self._tokens = min(tokens, settings.llm_max_tokens)

    def words(self, request: LLMRequest) -> list[str]:
        """The answer's tokens: "You said:" and the question's words, cycled to length."""
        said = request.text.split() or ["..."]
        return list(
            itertools.islice(itertools.chain(["You", "said:"], itertools.cycle(said)), self._tokens)
        )

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        words = self.words(request)
        if self._first_token_s:
            await asyncio.sleep(self._first_token_s)
        for index, word in enumerate(words):
            if index and self._gap_s:
                await asyncio.sleep(self._gap_s)
            yield TextChunk(word if index == 0 else f" {word}")
        prompt_chars = sum(len(m.get("content", "")) for m in request.chat())
        yield Finished(
            model=ECHO_MODEL,
            usage=Usage(prompt_tokens=max(1, prompt_chars // 4), completion_tokens=len(words)),
            finish_reason="stop",
        )

    async def aclose(self) -> None:
        return None
