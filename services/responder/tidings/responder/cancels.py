"""Which answers were asked to stop.

A cancel request travels on the message's own partition, usually behind it. The fetch
loop hands it here the moment it is fetched (not in queue order): a message being answered
has its cancel event set and stops within moments; a message still waiting (or not seen
yet, after a redelivery reordering) is remembered, so it ends as `cancelled` as soon as it
comes up. A cancel for a message that is already answered or unknown changes nothing.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from tidings.common.logging import get_logger

log = get_logger(__name__)


class CancelRegistry:
    """Cancel events of the answers in progress, and recently cancelled message ids."""

    def __init__(self, *, remember: int = 10_000) -> None:
        self._active: dict[str, asyncio.Event] = {}
        self._early: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def cancel(self, message_id: str) -> bool:
        """Ask the answer of `message_id` to stop; True when it was in progress here."""
        event = self._active.get(message_id)
        if event is not None:
            event.set()
            return True
        # Not started (or already finished): remembered, bounded, oldest forgotten first.
        self._early[message_id] = None
        self._early.move_to_end(message_id)
        while len(self._early) > self._remember:
            self._early.popitem(last=False)
        return False

    def begin(self, message_id: str) -> asyncio.Event:
        """The cancel event of an answer starting now (already set if it was cancelled)."""
        event = asyncio.Event()
        if message_id in self._early:
            del self._early[message_id]
            event.set()
        self._active[message_id] = event
        return event

    def end(self, message_id: str) -> None:
        """The answer of `message_id` ended."""
        self._active.pop(message_id, None)

    def is_active(self, message_id: str) -> bool:
        return message_id in self._active
