"""What the order tool remembers of a conversation: the e-mail given, the number it waits for.

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
from typing import Literal

from tidings.common.events import HistoryTurn, UserMessage
from tidings.responder.coalesce import Clock
from tidings.responder.memory import ContextSource
from tidings.responder.tools.order_text import find_email, find_order_number

Awaiting = Literal["number", "email"] | None


@dataclass
class OrderNotes:
    """One conversation's order-status state."""

    email: str | None = None
    number: str | None = None
    awaiting: Awaiting = None
    seen_at: float = 0.0


class SessionNotes:
    """`OrderNotes` of the latest `max_sessions` sessions, forgotten after `ttl_s`."""

    def __init__(
        self, *, max_sessions: int = 10_000, ttl_s: float = 1800.0, clock: Clock = time.monotonic
    ) -> None:
        self._notes: OrderedDict[str, OrderNotes] = OrderedDict()
        self._max = max_sessions
        self._ttl = ttl_s
        self._clock = clock

    def known(self, session_id: str) -> bool:
        """True when this replica has live notes of the session."""
        notes = self._notes.get(session_id)
        return notes is not None and self._clock() - notes.seen_at <= self._ttl

    def put(self, session_id: str, notes: OrderNotes) -> OrderNotes:
        """Keep `notes` as the session's (read from elsewhere); returns them."""
        notes.seen_at = self._clock()
        self._notes.pop(session_id, None)
        self._notes[session_id] = notes
        return self.get(session_id)

    def get(self, session_id: str) -> OrderNotes:
        """The session's notes (new ones when unknown or expired)."""
        now = self._clock()
        notes = self._notes.pop(session_id, None)
        if notes is None or now - notes.seen_at > self._ttl:
            notes = OrderNotes()
        notes.seen_at = now
        self._notes[session_id] = notes
        while len(self._notes) > self._max:
            self._notes.popitem(last=False)
        return notes


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
