"""`GET /sessions/{id}/messages` (history) and `POST /chat/{message_id}/cancel`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tidings.common.events import CancelRequest
from tidings.common.logging import bind, get_logger
from tidings.common.memory_api import SessionMessages, SessionNotFoundError
from tidings.common.tracing import TRACEPARENT_HEADER, child_traceparent
from tidings.gateway.api.chat import publish_or_503, read_body
from tidings.gateway.api.stream import check_request_rate
from tidings.gateway.auth import check_session_access, session_not_found
from tidings.gateway.deps import CallerDep, ContextDep
from tidings.gateway.errors import ApiError, describe_validation_errors
from tidings.gateway.schemas import MESSAGE_ID_PATTERN, SESSION_ID_PATTERN, ErrorBody

log = get_logger(__name__)
router = APIRouter()

_MAX_CANCEL_BODY = 1024


class CancelBody(BaseModel):
    """`POST /chat/{message_id}/cancel` body (or give `session_id` as a query parameter)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    session_id: str = Field(pattern=SESSION_ID_PATTERN, description="The message's session.")


class CancelAccepted(BaseModel):
    """The cancel request was queued; the stream ends with `error` reason `cancelled`."""

    session_id: str
    message_id: str
    status: str = "cancelling"


def _errors(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": text} for code, text in codes.items()}


@router.get(
    "/sessions/{session_id}/messages",
    response_model=SessionMessages,
    summary="A session's conversation so far",
    responses=_errors(
        {
            401: "A bearer token is required (GATEWAY_AUTH=jwt).",
            404: "No such session (or not yours).",
            429: "Too many requests (`rate_limited`); see Retry-After.",
            503: "The memory service is not answering (`history_unavailable`).",
        }
    ),
)
async def session_messages(
    ctx: ContextDep,
    caller: CallerDep,
    response: Response,
    session_id: Annotated[str, Path(pattern=SESSION_ID_PATTERN)],
    limit: Annotated[int, Query(ge=1, le=500, description="Turns per page.")] = 100,
    cursor: Annotated[
        str | None,
        Query(max_length=40, pattern=r"^[0-9]+(\.[0-9]+)?$", description="`next_cursor`."),
    ] = None,
) -> SessionMessages:
    """A page of the session's stored turns, oldest first, from the memory service; pass
    `next_cursor` back as `cursor` for the next page."""
    check_request_rate(ctx, caller)
    await check_session_access(
        caller, session_id, ctx.owners, wait_s=ctx.settings.ownership_wait_s, memory=ctx.memory
    )
    # A person's conversation: no cache on the way may keep a copy.
    response.headers["Cache-Control"] = "no-store"
    history = None
    if ctx.memory is not None:
        try:
            history = await ctx.memory.session_messages(
                session_id, user=caller.subject, limit=limit, cursor=cursor
            )
        except SessionNotFoundError:
            raise session_not_found() from None
    if history is None:
        raise ApiError(
            503,
            "history_unavailable",
            "The conversation history is not available right now.",
            headers={"Retry-After": "5"},
        )
    return history


async def _cancel_session_id(request: Request, query_session: str | None) -> str:
    """The session from the query or the JSON body (when both are given they must agree)."""
    body = await read_body(request, _MAX_CANCEL_BODY, code="request_too_large")
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not body:
        if query_session is not None:
            return query_session
        raise ApiError(422, "invalid_request", "session_id is required (body or query).")
    if media_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the body as application/json.")
    try:
        session_id = CancelBody.model_validate_json(body).session_id
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise ApiError(400, "invalid_json", "The request body is not valid JSON.") from None
        raise ApiError(422, "invalid_session_id", describe_validation_errors(errors)) from None
    if query_session is not None and query_session != session_id:
        raise ApiError(422, "invalid_session_id", "The query and body name different sessions.")
    return session_id


@router.post(
    "/chat/{message_id}/cancel",
    status_code=202,
    response_model=CancelAccepted,
    summary="Stop the answer to a message",
    responses=_errors(
        {
            400: "The body is not valid JSON.",
            401: "A bearer token is required (GATEWAY_AUTH=jwt).",
            404: "No such session (or not yours).",
            415: "The body is not JSON.",
            413: "The body is larger than 1 KiB.",
            422: "session_id missing or malformed.",
            429: "Too many requests (`rate_limited`); see Retry-After.",
            503: "The broker did not take the request (`broker_unavailable`).",
        }
    ),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": CancelBody.model_json_schema()}},
        }
    },
)
async def cancel(
    request: Request,
    ctx: ContextDep,
    caller: CallerDep,
    message_id: Annotated[str, Path(pattern=MESSAGE_ID_PATTERN)],
    session_id: Annotated[str | None, Query(pattern=SESSION_ID_PATTERN)] = None,
) -> CancelAccepted:
    """Publish a cancel request on the message's partition; the responder ends the answer
    only when it names the message's own session and the same user."""
    check_request_rate(ctx, caller)
    session = await _cancel_session_id(request, session_id)
    await check_session_access(
        caller, session, ctx.owners, wait_s=ctx.settings.ownership_wait_s, memory=ctx.memory
    )
    event = CancelRequest(message_id=message_id, session_id=session, user=caller.subject)
    with bind(message_id=message_id):
        await publish_or_503(ctx, event, child_traceparent(request.headers.get(TRACEPARENT_HEADER)))
        log.info("cancel requested")
    return CancelAccepted(session_id=session, message_id=message_id)
