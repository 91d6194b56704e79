"""`POST /chat`: accept a user message, publish it, answer where to stream the reply."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError
from sse_starlette import EventSourceResponse

from tidings.common.events import CancelRequest, UserMessage, new_id
from tidings.common.logging import get_logger
from tidings.common.tracing import TRACEPARENT_HEADER, child_traceparent, trace_id_of
from tidings.gateway.api.stream import reserve_stream, shed_when_overloaded, sse_response
from tidings.gateway.auth import Caller, session_not_found, session_owner
from tidings.gateway.deps import (
    BEARER_SCHEME,
    GatewayContext,
    context_of,
)
from tidings.gateway.errors import ApiError, describe_validation_errors
from tidings.gateway.limits import retry_after
from tidings.gateway.metrics import MESSAGES_ACCEPTED
from tidings.gateway.publisher import PublishError
from tidings.gateway.schemas import ChatAccepted, ChatRequest, ErrorBody, stream_url
from tidings.gateway.settings import GatewaySettings

log = get_logger(__name__)
# The standard-library logger under `log`: asked whether a line would be written at all.
_levels = logging.getLogger(__name__)
router = APIRouter()

# A JSON string may spell each byte of text as a six-character escape, so the body limit
# leaves room for that before the decoded sizes are checked exactly.
_ESCAPE_FACTOR = 6
_ENVELOPE_BYTES = 1024


def body_limit(settings: GatewaySettings) -> int:
    """Largest request body worth reading for the configured message and metadata limits."""
    return _ESCAPE_FACTOR * (settings.max_message_bytes + settings.max_metadata_bytes) + (
        _ENVELOPE_BYTES
    )


def _too_large(limit: int, code: str = "message_too_large") -> ApiError:
    return ApiError(413, code, f"The request body is larger than {limit} bytes.")


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def read_body(request: Request, limit: int, *, code: str = "message_too_large") -> bytes:
    """The request body, read chunk by chunk and refused (413) as soon as it passes `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, code)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit, code)
    return bytes(body)


def _parse(body: bytes) -> ChatRequest:
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
        code = (
            "invalid_session_id"
            if any(error["loc"] == ("session_id",) for error in errors)
            else "invalid_request"
        )
        raise ApiError(422, code, describe_validation_errors(errors)) from None


def _json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


async def read_chat_request(request: Request, settings: GatewaySettings) -> ChatRequest:
    """The validated body of `POST /chat`, or an `ApiError` with a precise code."""
    if not _is_json(request.headers.get("content-type", "")):
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    chat = _parse(await read_body(request, body_limit(settings)))
    if len(chat.message.encode()) > settings.max_message_bytes:
        raise ApiError(
            413,
            "message_too_large",
            f"The message is longer than {settings.max_message_bytes} bytes.",
        )
    if not chat.message.strip():
        raise ApiError(422, "empty_message", "The message is empty.")
    if chat.metadata and _json_size(chat.metadata) > settings.max_metadata_bytes:
        raise ApiError(
            413,
            "metadata_too_large",
            f"The metadata is larger than {settings.max_metadata_bytes} bytes as JSON.",
        )
    return chat


def check_rate(ctx: GatewayContext, caller: Caller) -> None:
    """429 with `Retry-After` when the caller's token bucket is empty."""
    wait = ctx.limiter.take(caller.limit_key)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            "Too many messages; slow down.",
            headers={"Retry-After": retry_after(wait)},
        )


async def resolve_session(ctx: GatewayContext, caller: Caller, session_id: str | None) -> str:
    """The session to post to: a new 128-bit random id, or the given one if the caller may.

    With JWT auth a given session must be the caller's: an unknown one is waited for briefly
    (it may have been created through another replica), then claimed.
    """
    if session_id is None:
        session_id = new_id()
        if caller.subject is not None:
            ctx.owners.claim(session_id, caller.subject)
        return session_id
    if caller.subject is None:
        return session_id
    owner = await session_owner(
        session_id, ctx.owners, ctx.memory, wait_s=ctx.settings.ownership_wait_s
    )
    if owner is None:
        ctx.owners.claim(session_id, caller.subject)
    elif owner != caller.subject:
        raise session_not_found()
    return session_id


async def publish_or_503(ctx: GatewayContext, event: UserMessage | CancelRequest, tp: str) -> None:
    """Publish, answering 503 with `Retry-After` when the broker cannot take it now."""
    if not ctx.publisher.running:
        raise ApiError(503, "unavailable", "The gateway is shutting down; try again.")
    try:
        await ctx.publisher.publish(event, traceparent=tp)
    except PublishError as exc:
        log.warning(
            "event not acknowledged by the broker",
            error=str(exc),
            session_id=event.session_id,
            message_id=event.message_id,
            trace_id=trace_id_of(tp),
        )
        raise ApiError(
            503,
            "broker_unavailable",
            "The message could not be queued right now; try again shortly.",
            headers={"Retry-After": "2"},
        ) from None


def wants_sse(request: Request) -> bool:
    """True when the client asked for the answer in this response (`Accept: text/event-stream`)."""
    return "text/event-stream" in request.headers.get("accept", "").lower()


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "The body is not valid JSON (`invalid_json`).",
        413: "The message or metadata is too large.",
        415: "The body is not JSON.",
        401: "A bearer token is required (GATEWAY_AUTH=jwt).",
        404: "The session belongs to someone else (`session_not_found`).",
        422: "Unknown or mistyped fields, an empty message or a malformed session id.",
        429: "Rate limited (`rate_limited`) or too many open streams; see Retry-After.",
        503: "The broker did not acknowledge the message in time (`broker_unavailable`), or "
        "the service is at capacity (`overloaded`); see Retry-After.",
    }.items()
}
_ERRORS[200] = {
    "description": "The answer as Server-Sent Events, with `Accept: text/event-stream`.",
    "content": {"text/event-stream": {}},
}
# OpenAPI links: what a client (or a stateful test) does next with the ids it was given.
_ERRORS[202] = {
    "description": "Queued; stream the answer from `stream_url`.",
    "links": {
        "StreamAnswer": {
            "operationId": "stream_stream_get",
            "parameters": {
                "session_id": "$response.body#/session_id",
                "message_id": "$response.body#/message_id",
            },
        },
        "SessionHistory": {
            "operationId": "session_messages_sessions__session_id__messages_get",
            "parameters": {"session_id": "$response.body#/session_id"},
        },
        "CancelAnswer": {
            "operationId": "cancel_chat__message_id__cancel_post",
            "parameters": {
                "message_id": "$response.body#/message_id",
                "query.session_id": "$response.body#/session_id",
            },
        },
    },
}


@router.post(
    "/chat",
    status_code=202,
    response_model=ChatAccepted,
    responses=_ERRORS,
    summary="Send a chat message",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ChatRequest.model_json_schema()}},
        },
        "security": [{BEARER_SCHEME: []}],
    },
)
async def chat(request: Request) -> Any:
    """Queue the message for the responder; 202 once the broker has acknowledged it.

    With `Accept: text/event-stream` the answer streams in this response instead (200).
    """
    # The busiest endpoint resolves its parts itself rather than through FastAPI
    # dependencies, each of which costs a resolution pass per request (measured in
    # docs/benchmarks.md, gateway (a)); same order: body first, then the caller.
    ctx = context_of(request)
    body = await read_chat_request(request, ctx.settings)
    caller = await ctx.authenticator.caller(request)
    check_rate(ctx, caller)
    shed_when_overloaded(ctx)
    session_id = await resolve_session(ctx, caller, body.session_id)
    message = UserMessage(
        message_id=new_id(),
        session_id=session_id,
        user=caller.subject,
        text=body.message,
        metadata=body.metadata,
    )
    traceparent = child_traceparent(request.headers.get(TRACEPARENT_HEADER))
    streaming = wants_sse(request)
    subscription = None
    if streaming:
        reserve_stream(ctx, caller)
        # Subscribe before publishing, so not even a very fast answer can be missed.
        subscription = ctx.hub.subscribe(session_id)
    try:
        await publish_or_503(ctx, message, traceparent)
    except ApiError:
        if subscription is not None:
            subscription.close()
            ctx.streams.release(caller.limit_key)
        raise
    MESSAGES_ACCEPTED.inc()
    # The ids go on the line itself rather than through `bind`: nothing else logs in
    # between, and on the busiest path a line nobody writes should cost nothing.
    if _levels.isEnabledFor(logging.INFO):
        log.info(
            "message accepted",
            session_id=session_id,
            message_id=message.message_id,
            trace_id=trace_id_of(traceparent),
            chars=len(body.message),
            streaming=streaming,
        )
    if subscription is not None:
        response: EventSourceResponse = sse_response(
            ctx, caller, subscription, message_id=message.message_id, last_event_id=None
        )
        response.headers["X-Session-Id"] = session_id
        response.headers["X-Message-Id"] = message.message_id
        return response
    # The `ChatAccepted` body, serialised here: returning the model would have FastAPI
    # validate it again against `response_model` (which still documents it in the schema).
    accepted = {
        "session_id": session_id,
        "message_id": message.message_id,
        "stream_url": stream_url(session_id, message.message_id),
    }
    # The session id is a key to the conversation: no cache may keep it.
    return Response(
        json.dumps(accepted),
        status_code=202,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
