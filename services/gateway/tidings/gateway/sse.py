"""Encoding stream messages as Server-Sent Events."""

from __future__ import annotations

import json

from sse_starlette import ServerSentEvent

from tidings.gateway.answer import SseMessage


def to_sse(message: SseMessage) -> ServerSentEvent:
    """`event:` name, compact single-line JSON `data:` and, when it has one, the `id:`."""
    data = json.dumps(message.data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return ServerSentEvent(data, event=message.event, id=message.id)


def opening(retry_ms: int) -> ServerSentEvent:
    """First bytes of every stream: flushes the headers at once and sets the reconnect delay."""
    return ServerSentEvent(comment="stream open", retry=retry_ms)
