"""What the store's tools remember of a conversation, per session (`SessionStore`): the
order tool's e-mail given and the number it waits for (`OrderNotes`); the recommendations
tool keeps the books it last suggested in one too.

Kept per session by this replica (a session's messages all come to the replica that holds
its partition), bounded in sessions and in time. When the client sends the conversation
with its message (the OpenAI-compatible API does), the notes are read from that instead;
when this replica has no notes of the session (it took the partition over after a
rebalance or a restart), from the session's recent turns in the memory service.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from tidings.common.events import HistoryTurn, UserMessage
from tidings.responder.coalesce import Clock
from tidings.responder.memory import ContextSource
from tidings.responder.tools.order_text import find_email, find_order_number

Awaiting = Literal["number", "email"] | None
T = TypeVar("T")


@dataclass
class OrderNotes:
    """One conversation's order-status state."""

    email: str | None = None
    number: str | None = None
    awaiting: Awaiting = None


class SessionStore(Generic[T]):
    """A value per session for the latest `max_sessions` sessions, each forgotten `ttl_s`
    after it was last put."""

    def __init__(
        self, *, max_sessions: int = 10_000, ttl_s: float = 1800.0, clock: Clock = time.monotonic
    ) -> None:
        self._items: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._max = max_sessions
        self._ttl = ttl_s
        self._clock = clock

    def get(self, session_id: str) -> T | None:
        """The session's value, or None when unknown or expired."""
        found = self._items.get(session_id)
        if found is None or self._clock() - found[0] > self._ttl:
            return None
        return found[1]

    def put(self, session_id: str, value: T) -> T:
        """Keep `value` as the session's, the most recent one; returns it."""
        self._items.pop(session_id, None)
        self._items[session_id] = (self._clock(), value)
        while len(self._items) > self._max:
            self._items.popitem(last=False)
        return value


class SessionNotes(SessionStore[OrderNotes]):
    """`OrderNotes` of the latest sessions, forgotten `ttl_s` after their last use."""

    def known(self, session_id: str) -> bool:
        """True when this replica has live notes of the session."""
        return super().get(session_id) is not None

    def get(self, session_id: str) -> OrderNotes:
        """The session's notes (new ones when unknown or expired), kept as used now."""
        return self.put(session_id, super().get(session_id) or OrderNotes())


def notes_from_history(history: Sequence[HistoryTurn], asks: dict[str, Awaiting]) -> OrderNotes:
    """The notes a conversation implies: the last e-mail and order number the user wrote,
    and what the bot's last answer asked for (`asks`: answer prefix -> what it asks)."""
    notes = OrderNotes()
    for turn in history:
        if turn.role == "user":
            notes.email = find_email(turn.text) or notes.email
            notes.number = find_order_number(turn.text) or notes.number
            notes.awaiting = None
        else:
            notes.awaiting = next(
                (wanted for prefix, wanted in asks.items() if turn.text.startswith(prefix)), None
            )
    return notes


Recent = Callable[[UserMessage], Awaitable[Sequence[HistoryTurn] | None]]


def memory_recent(context: ContextSource) -> Recent:
    """The session's recent turns from the memory service (None when it cannot say)."""

    async def recent(message: UserMessage) -> Sequence[HistoryTurn] | None:
        found = await context.context(message.session_id, message.text, user=message.user)
        if found is None:
            return None
        # The message itself may be stored already: only what came before it.
        turns = [t for t in found.recent if t.message_id != message.message_id]
        return [HistoryTurn(role=t.role, text=t.text) for t in turns]

    return recent
