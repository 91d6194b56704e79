"""`GET /sessions/{id}/messages` (history) and `POST /chat/{message_id}/cancel`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tidings.common.events import CancelRequest
from tidings.common.logging import bind, get_logger
from tidings.common.memory_api import SessionMessages
from tidings.common.tracing import TRACEPARENT_HEADER, child_traceparent
from tidings.gateway.api.chat import publish_or_503
from tidings.gateway.auth import check_session_access
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
            503: "The memory service is not answering (`history_unavailable`).",
        }
    ),
)
async def session_messages(
    ctx: ContextDep,
    caller: CallerDep,
    session_id: Annotated[str, Path(pattern=SESSION_ID_PATTERN)],
) -> SessionMessages:
    """The stored turns of the session, oldest first, from the memory service."""
    await check_session_access(caller, session_id, ctx.owners, wait_s=ctx.settings.ownership_wait_s)
    history = None
    if ctx.memory is not None:
        history = await ctx.memory.session_messages(session_id, user=caller.subject)
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
    body = await request.body()
    if len(body) > _MAX_CANCEL_BODY:
        raise ApiError(413, "request_too_large", "The request body is too large.")
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
            422: "session_id missing or malformed.",
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
    """Publish a cancel request on the message's partition; the responder ends the answer."""
    session = await _cancel_session_id(request, session_id)
    await check_session_access(caller, session, ctx.owners, wait_s=ctx.settings.ownership_wait_s)
    event = CancelRequest(message_id=message_id, session_id=session, user=caller.subject)
    with bind(session_id=session, message_id=message_id):
        await publish_or_503(ctx, event, child_traceparent(request.headers.get(TRACEPARENT_HEADER)))
        log.info("cancel requested")
    return CancelAccepted(session_id=session, message_id=message_id)
