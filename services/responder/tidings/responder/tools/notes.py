"""What the order tool remembers of a conversation: the e-mail given, the number it waits for.

Kept per session by this replica (a session's messages all come to the replica that holds
its partition), bounded in sessions and in time. When the client sends the conversation
with its message (the OpenAI-compatible API does), the notes are read from that instead.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tidings.common.events import HistoryTurn
from tidings.responder.coalesce import Clock
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
