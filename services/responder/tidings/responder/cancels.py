"""Which answers were asked to stop.

A cancel request travels on the message's own partition, usually behind it. The fetch
loop hands it here the moment it is fetched (not in queue order): a message being answered
has its cancel event set and stops within moments; a message still waiting (or not seen
yet, after a redelivery reordering) is remembered, so it ends as `cancelled` as soon as it
comes up. A cancel for a message that is already answered or unknown changes nothing.

A cancel stops an answer only when it names the message's own session and user: the
message id alone would let one session stop another's answer.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from tidings.common.logging import get_logger

log = get_logger(__name__)


Whose = tuple[str, str | None]
"""A message's session and user (None: anonymous): a cancel must name both."""


class CancelRegistry:
    """Cancel events of the answers in progress, and recently cancelled messages."""

    def __init__(self, *, remember: int = 10_000) -> None:
        self._active: dict[str, tuple[Whose, asyncio.Event]] = {}
        self._early: OrderedDict[tuple[str, Whose], None] = OrderedDict()
        self._remember = remember

    def cancel(self, message_id: str, whose: Whose) -> bool:
        """Ask the answer of `message_id` to stop; True when it was in progress here (and
        `whose` is its session and user)."""
        active = self._active.get(message_id)
        if active is not None:
            if active[0] != whose:
                log.info("cancel request for another session's message ignored")
                return False
            active[1].set()
            return True
        # Not started (or already finished): remembered, bounded, oldest forgotten first.
        key = (message_id, whose)
        self._early[key] = None
        self._early.move_to_end(key)
        while len(self._early) > self._remember:
            self._early.popitem(last=False)
        return False

    def begin(self, message_id: str, whose: Whose) -> asyncio.Event:
        """The cancel event of an answer starting now (already set if it was cancelled)."""
        event = asyncio.Event()
        if self._early.pop((message_id, whose), False) is None:
            event.set()
        self._active[message_id] = (whose, event)
        return event

    def end(self, message_id: str) -> None:
        """The answer of `message_id` ended."""
        self._active.pop(message_id, None)

    def is_active(self, message_id: str) -> bool:
        return message_id in self._active
