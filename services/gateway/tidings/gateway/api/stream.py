"""`GET /stream`: a session's answers as Server-Sent Events, replayed then live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from tidings.common.logging import get_logger
from tidings.gateway.answer import AnswerStream
from tidings.gateway.deps import HubDep, SettingsDep
from tidings.gateway.hub import Subscription
from tidings.gateway.metrics import OPEN_STREAMS, STREAMS_DROPPED
from tidings.gateway.schemas import MESSAGE_ID_PATTERN, SESSION_ID_PATTERN
from tidings.gateway.sse import opening, to_sse

log = get_logger(__name__)
router = APIRouter()

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class OpenStream:
    """One client's stream; `release` ends its subscription exactly once however it ends."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self._released = False
        OPEN_STREAMS.inc()

    def release(self) -> None:
        # Called from the generator's `finally` and again as the response's background
        # task, because a generator cancelled while suspended is only finalised later.
        if self._released:
            return
        self._released = True
        self.subscription.close()
        OPEN_STREAMS.dec()
        if self.subscription.overflowed:
            STREAMS_DROPPED.inc()


async def stream_events(
    stream: OpenStream, answers: AnswerStream, *, retry_ms: int
) -> AsyncIterator[ServerSentEvent]:
    """The opening comment, the replayed events, then live ones until the answer ends.

    Without a message id it runs until the client leaves or the gateway shuts down.
    """
    subscription = stream.subscription
    try:
        yield opening(retry_ms)
        for item in subscription.snapshot:
            for message in answers.feed(item):
                yield to_sse(message)
            if answers.finished:
                return
        while batch := await subscription.next_batch():
            for item in batch:
                for message in answers.feed(item):
                    yield to_sse(message)
                if answers.finished:
                    return
    finally:
        stream.release()


@router.get(
    "/stream",
    summary="Stream answers as Server-Sent Events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    hub: HubDep,
    settings: SettingsDep,
    session_id: Annotated[str, Query(pattern=SESSION_ID_PATTERN)],
    message_id: Annotated[str | None, Query(pattern=MESSAGE_ID_PATTERN)] = None,
) -> EventSourceResponse:
    """Events `start`, `token`, `done`, `error` and `reset`, each with JSON data.

    With `message_id` the stream ends right after that message's `done` or `error`; events
    that arrived before the client connected are replayed first.
    """
    opened = OpenStream(hub.subscribe(session_id))
    log.debug("stream opened", session_id=session_id, message_id=message_id)
    return EventSourceResponse(
        stream_events(opened, AnswerStream(message_id), retry_ms=settings.sse_retry_ms),
        headers=SSE_HEADERS,
        ping=settings.sse_ping_s,
        background=BackgroundTask(opened.release),
    )
