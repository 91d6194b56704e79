"""The interface every LLM backend implements: a stream of text, then what it cost."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tidings.common.events import Usage

# Stable codes, shared with `response.error` events and the metrics.
LLM_UNAVAILABLE = "llm_unavailable"
LLM_TIMEOUT = "llm_timeout"
LLM_FAILED = "llm_failed"


class LLMError(Exception):
    """A generation failed; `code` is a stable reason (`llm_unavailable`, `llm_timeout`, ...)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


ChatMessage = dict[str, str]
"""One chat message: `{"role": "system" | "user" | "assistant", "content": ...}`."""


@dataclass(frozen=True)
class LLMRequest:
    """What to answer: the chat messages of the prompt, the user's own text last.

    The router builds `messages` (system prompt, knowledge, recent turns, the question)
    within the context budget; `text` is the question alone, for backends that need it.
    """

    text: str
    messages: tuple[ChatMessage, ...] = ()

    def chat(self, system_prompt: str = "") -> list[ChatMessage]:
        """`messages`, or a minimal prompt (system prompt + question) when none were built."""
        if self.messages:
            return [dict(m) for m in self.messages]
        return build_messages(system_prompt, self)


@dataclass(frozen=True)
class TextChunk:
    """A piece of answer text, in order."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The last item of a stream: which model answered and the token counts it reported."""

    model: str | None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    backend: str | None = None


LLMEvent = TextChunk | Finished


class LLMBackend(Protocol):
    """An LLM that streams an answer.

    `stream` yields `TextChunk`s and ends with one `Finished`; any failure is raised as
    `LLMError`. Closing the iterator early (cancellation) must release the request.
    """

    @property
    def name(self) -> str:
        """Backend name as in LLM_BACKEND."""
        ...

    @property
    def model(self) -> str:
        """The configured model name."""
        ...

    def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        """Stream the answer to `request`."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def build_messages(
    system_prompt: str, request: LLMRequest, context: Sequence[str] = ()
) -> list[ChatMessage]:
    """Chat messages: the system prompt, any context passages, then the user's text."""
    messages = [{"role": "system", "content": system_prompt}]
    if context:
        passages = "\n".join(f"- {passage}" for passage in context)
        messages.append(
            {
                "role": "system",
                "content": f"Information that may help you answer:\n{passages}",
            }
        )
    messages.append({"role": "user", "content": request.text})
    return messages
