"""Who owns a session, learned from `user_messages` so every replica knows it.

With `GATEWAY_AUTH=jwt` a session belongs to the subject (`sub`) that sent its first
message. Every replica reads all partitions of `user_messages` (no consumer group) and
records `session_id -> UserMessage.user` here, first writer wins, so a request for a session
can be checked on any replica, not only on the one that accepted the session's first message.
The map is bounded (least recently used sessions are forgotten first); an unknown session is
denied, never guessed.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict


class OwnershipMap:
    """Bounded `session_id -> subject` map; the first subject recorded for a session wins."""

    def __init__(self, max_sessions: int) -> None:
        self._max = max_sessions
        self._owners: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._owners)

    def owner(self, session_id: str) -> str | None:
        """The subject that owns `session_id`, or None when this replica does not know it."""
        owner = self._owners.get(session_id)
        if owner is not None:
            self._owners.move_to_end(session_id)
        return owner

    def record(self, session_id: str, user: str | None) -> None:
        """Learn an owner from a user message read from Kafka (anonymous ones own nothing)."""
        if user is None or session_id in self._owners:
            return
        self._set(session_id, user)

    def claim(self, session_id: str, user: str) -> bool:
        """Take `session_id` for `user` unless another subject owns it; True when `user` owns it."""
        owner = self.owner(session_id)
        if owner is not None:
            return owner == user
        self._set(session_id, user)
        return True

    def _set(self, session_id: str, user: str) -> None:
        self._owners[session_id] = user
        while len(self._owners) > self._max:
            self._owners.popitem(last=False)

    async def wait_for_owner(self, session_id: str, wait_s: float) -> str | None:
        """The owner, waiting up to `wait_s` for the reader to catch up with a new session."""
        deadline = time.monotonic() + wait_s
        while True:
            owner = self.owner(session_id)
            if owner is not None or time.monotonic() >= deadline:
                return owner
            await asyncio.sleep(0.05)
