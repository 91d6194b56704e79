"""`GET /stream`: a session's answers as Server-Sent Events, replayed, resumed, then live."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from tidings.common.logging import get_logger
from tidings.gateway.auth import Caller, check_session_access
from tidings.gateway.deps import CallerDep, ContextDep, GatewayContext
from tidings.gateway.errors import ApiError
from tidings.gateway.hub import Subscription
from tidings.gateway.limits import retry_after
from tidings.gateway.schemas import EVENT_ID_PATTERN, MESSAGE_ID_PATTERN, SESSION_ID_PATTERN
from tidings.gateway.streaming import OpenStream, StreamPolicy, stream_events

log = get_logger(__name__)
router = APIRouter()

# Answers are personal data: no cache on the way may keep them (no-store implies no-cache).
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def shed_when_overloaded(ctx: GatewayContext) -> None:
    """503 `overloaded` with Retry-After while memory is past the shedding point."""
    if ctx.shedder.overloaded():
        raise _overloaded()


def _overloaded() -> ApiError:
    return ApiError(
        503,
        "overloaded",
        "The service is at capacity; try again shortly.",
        headers={"Retry-After": "5"},
    )


def check_request_rate(ctx: GatewayContext, caller: Caller) -> None:
    """429 with Retry-After when the caller opens streams, reads history or cancels too fast."""
    wait = ctx.request_limiter.take(caller.limit_key)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            "Too many requests; slow down.",
            headers={"Retry-After": retry_after(wait)},
        )


def reserve_stream(ctx: GatewayContext, caller: Caller) -> None:
    """503 when this replica holds all the streams it may (or memory is short), 429 when
    the caller already holds its share."""
    if ctx.streams.full or ctx.shedder.overloaded():
        raise _overloaded()
    if not ctx.streams.acquire(caller.limit_key):
        raise ApiError(
            429,
            "too_many_streams",
            f"At most {ctx.settings.max_streams_per_subject} streams may be open at once.",
            headers={"Retry-After": "5"},
        )


def release_on_loop(opened: OpenStream) -> BackgroundTask:
    """The response's background task that gives the stream back, run on the event loop.

    Starlette runs a plain function in a worker thread; releasing touches the hub's and the
    stream cap's dicts, which only the event loop may change.
    """

    async def release() -> None:
        opened.release()

    return BackgroundTask(release)


def sse_response(
    ctx: GatewayContext,
    caller: Caller,
    subscription: Subscription,
    *,
    message_id: str | None,
    last_event_id: str | None,
) -> EventSourceResponse:
    """The SSE response for a subscription whose stream slot `reserve_stream` already took."""
    settings = ctx.settings
    opened = OpenStream(subscription, lambda: ctx.streams.release(caller.limit_key))
    policy = StreamPolicy(
        retry_ms=settings.sse_retry_ms,
        start_timeout_s=settings.answer_start_timeout_s,
        idle_timeout_s=settings.answer_idle_timeout_s,
        unavailable_after_s=settings.unavailable_after_s,
        broker_down_for=ctx.broker_down_for,
        memory=ctx.memory,
        user=caller.subject,
    )
    return EventSourceResponse(
        stream_events(opened, policy, message_id=message_id, last_event_id=last_event_id),
        headers=SSE_HEADERS,
        ping=settings.sse_ping_s,
        send_timeout=settings.sse_send_timeout_s,
        background=release_on_loop(opened),
    )


@router.get(
    "/stream",
    summary="Stream answers as Server-Sent Events",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        401: {"description": "A bearer token is required (GATEWAY_AUTH=jwt)."},
        404: {"description": "No such session (or not yours)."},
        429: {"description": "Too many open streams, or opened too fast (`rate_limited`)."},
        503: {"description": "At capacity (`overloaded`); see Retry-After."},
    },
)
async def stream(
    ctx: ContextDep,
    caller: CallerDep,
    session_id: Annotated[str, Query(pattern=SESSION_ID_PATTERN)],
    message_id: Annotated[str | None, Query(pattern=MESSAGE_ID_PATTERN)] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            pattern=EVENT_ID_PATTERN,
            description="For clients that cannot set the Last-Event-ID header.",
        ),
    ] = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> EventSourceResponse:
    """Events `start`, `token`, `done`, `error` and `reset`, each with JSON data.

    With `message_id` the stream ends right after that message's `done` or `error`; events
    that arrived before the client connected are replayed first. With `Last-Event-ID` (or
    `last_event_id`), exactly the events after that id are sent.
    """
    check_request_rate(ctx, caller)
    await check_session_access(
        caller, session_id, ctx.owners, wait_s=ctx.settings.ownership_wait_s, memory=ctx.memory
    )
    reserve_stream(ctx, caller)
    log.debug("stream opened", session_id=session_id, message_id=message_id)
    return sse_response(
        ctx,
        caller,
        ctx.hub.subscribe(session_id),
        message_id=message_id,
        last_event_id=last_event_id or last_event_id_query,
    )
