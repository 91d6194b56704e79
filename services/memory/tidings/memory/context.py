"""Assembling `GET /context`: recent turns, related turns and knowledge within a budget.

The three kinds compete for one character budget. They take turns, best first: the newest
turn, the best knowledge chunk, the most related earlier turn, then the second of each,
and so on. An item that does not fit in what is left is skipped (a smaller one may still
fit), so no kind crowds the others out and the best of each comes first.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest

from tidings.common.memory_api import Context, KnowledgeChunk
from tidings.common.memory_api import Turn as ApiTurn
from tidings.memory.turns import Turn


def api_turn(turn: Turn, score: float | None = None) -> ApiTurn:
    """A stored turn as the API shows it."""
    return ApiTurn(
        message_id=turn.message_id,
        role=turn.role,
        text=turn.text,
        ts=turn.ts,
        source=turn.source,
        score=score,
    )


def within_budget(
    session_id: str,
    recent: Sequence[Turn],
    related: Sequence[tuple[Turn, float]],
    knowledge: Sequence[KnowledgeChunk],
    *,
    max_chars: int,
) -> Context:
    """The context: `recent` oldest first, the others best first, at most `max_chars` of text."""
    left = max_chars
    kept_recent: list[Turn] = []
    kept_related: list[tuple[Turn, float]] = []
    kept_knowledge: list[KnowledgeChunk] = []
    newest_first = list(reversed(recent))
    for turn, chunk, pair in zip_longest(newest_first, knowledge, related):
        if turn is not None and len(turn.text) <= left:
            kept_recent.append(turn)
            left -= len(turn.text)
        if chunk is not None and len(chunk.text) <= left:
            kept_knowledge.append(chunk)
            left -= len(chunk.text)
        if pair is not None and len(pair[0].text) <= left:
            kept_related.append(pair)
            left -= len(pair[0].text)
    return Context(
        session_id=session_id,
        recent=[api_turn(t) for t in sorted(kept_recent, key=Turn.sort_key)],
        related=[api_turn(t, score) for t, score in kept_related],
        knowledge=kept_knowledge,
    )
