"""The LLM prompt: system prompt, knowledge chunks, recent turns and the question, in budget.

The model's context window must hold the prompt plus the answer (LLM_MAX_TOKENS). Token
counts are estimated cheaply (about four characters per token, plus a few per message for
the chat template); that is close enough for small budgets and never needs the tokenizer.

What goes in, in this priority: the system prompt and the question always; then the
knowledge chunks, best score first, while they fit (weaker chunks are dropped first);
then the session's recent turns, newest first (older turns are dropped first), shown to
the model in chronological order before the question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tidings.common.events import SourceRef
from tidings.common.memory_api import Context, KnowledgeChunk, Turn
from tidings.responder.llm.base import ChatMessage

_PER_MESSAGE = 4


def estimate_tokens(text: str) -> int:
    """About four characters per token, rounded up."""
    return (len(text) + 3) // 4


def _cost(message: ChatMessage) -> int:
    return estimate_tokens(message["content"]) + _PER_MESSAGE


@dataclass(frozen=True)
class PromptLimits:
    """The budget of one prompt."""

    budget_tokens: int
    max_turns: int = 8
    max_chunks: int = 4


@dataclass(frozen=True)
class Prompt:
    """The messages for the backend and what they were built from."""

    messages: tuple[ChatMessage, ...]
    sources: list[SourceRef] = field(default_factory=list)
    turns_used: int = 0
    chunks_used: int = 0
    turns_dropped: int = 0
    chunks_dropped: int = 0

    @property
    def tokens(self) -> int:
        """The estimated size of the prompt."""
        return sum(_cost(m) for m in self.messages)


def _knowledge_message(chunks: Sequence[KnowledgeChunk]) -> ChatMessage:
    passages = "\n\n".join(f"[{c.title}]\n{c.text.strip()}" for c in chunks)
    return {
        "role": "system",
        "content": "Use this information from the knowledge base when it helps:\n\n" + passages,
    }


def build_prompt(
    system_prompt: str,
    question: str,
    context: Context | None,
    limits: PromptLimits,
    *,
    message_id: str | None = None,
) -> Prompt:
    """The prompt for `question`, with as much of `context` as the budget allows."""
    system: ChatMessage = {"role": "system", "content": system_prompt}
    user: ChatMessage = {"role": "user", "content": question}
    left = limits.budget_tokens - _cost(system) - _cost(user)
    if context is None:
        return Prompt((system, user))

    chunks = sorted(context.knowledge, key=lambda c: c.score, reverse=True)[: limits.max_chunks]
    kept: list[KnowledgeChunk] = []
    for chunk in chunks:
        trial = _cost(_knowledge_message([*kept, chunk]))
        if trial <= left:
            kept.append(chunk)
    extra = [] if not kept else [_knowledge_message(kept)]
    if kept:
        left -= _cost(extra[0])

    # The question itself may already be stored as a turn; it is sent last, once.
    eligible = [t for t in context.recent if not (t.role == "user" and t.message_id == message_id)]
    candidates = eligible[-limits.max_turns :]
    turns: list[Turn] = []
    for turn in reversed(candidates):
        cost = _cost({"role": turn.role, "content": turn.text})
        if cost > left:
            break
        turns.insert(0, turn)
        left -= cost
    history: list[ChatMessage] = [{"role": t.role, "content": t.text} for t in turns]
    return Prompt(
        messages=(system, *extra, *history, user),
        sources=source_refs(kept),
        turns_used=len(turns),
        chunks_used=len(kept),
        turns_dropped=len(eligible) - len(turns),
        chunks_dropped=len(context.knowledge) - len(kept),
    )


def source_refs(chunks: Sequence[KnowledgeChunk]) -> list[SourceRef]:
    """One reference per document (title and url), with its best score, best first."""
    best: dict[tuple[str, str | None], float] = {}
    for chunk in chunks:
        key = (chunk.title, chunk.url)
        best[key] = max(best.get(key, chunk.score), chunk.score)
    ordered = sorted(best.items(), key=lambda item: item[1], reverse=True)
    return [
        SourceRef(title=title, url=_web_link(url), score=round(score, 4))
        for (title, url), score in ordered
    ]


def _web_link(url: str | None) -> str | None:
    """`url` when a person can follow it (http or https); a `file://` path ingested before
    documents stopped carrying them is not shown."""
    return url if url and url.lower().startswith(("https://", "http://")) else None
