"""OpenAI-compatible API: `POST /v1/chat/completions` and `GET /v1/models`.

Lets the official `openai` SDK, LangChain or Open WebUI use Tidings as their model. The last
message (which must be the user's) is the question: it goes through Kafka like any other
chat message, with the user and assistant messages before it as the conversation
(`history`), so the responder answers follow-ups from the `messages` it was given. The
session comes from the `X-Session-Id` header or the `user` field (a value that is not a
valid session id is hashed into one); without either, every request is a new session.
Errors use OpenAI's shape `{"error": {"message", "type", "param", "code"}}`. Sampling
parameters are accepted and ignored: the responder's configuration decides.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import JSONResponse

from tidings.common.events import HistoryTurn, UserMessage, new_id
from tidings.common.logging import bind, get_logger
from tidings.common.tracing import TRACEPARENT_HEADER, child_traceparent
from tidings.gateway.answer import DONE, ERROR, RESET, TOKEN, SseMessage
from tidings.gateway.api.chat import check_rate, publish_or_503, resolve_session
from tidings.gateway.api.stream import (
    SSE_HEADERS,
    release_on_loop,
    reserve_stream,
    shed_when_overloaded,
)
from tidings.gateway.auth import Caller
from tidings.gateway.deps import ContextDep, GatewayContext, bearer_scheme
from tidings.gateway.errors import ApiError, describe_validation_errors
from tidings.gateway.metrics import MESSAGES_ACCEPTED
from tidings.gateway.schemas import SESSION_ID_PATTERN, inline_schema
from tidings.gateway.streaming import OpenStream, StreamPolicy, answer_messages

log = get_logger(__name__)
# The bearer scheme is declared for the schema; errors must keep OpenAI's shape, so the
# routes call the Authenticator themselves.
router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(bearer_scheme)])

_SESSION_RE = re.compile(SESSION_ID_PATTERN)


class ContentPart(BaseModel):
    """A part of a message's content; only text parts carry text."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message of the conversation the client sends."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None


# The conversation sent with a message: the latest turns, at most this many and this size.
HISTORY_TURNS = 40
HISTORY_BYTES = 32_000


class CompletionRequest(BaseModel):
    """The parts of an OpenAI chat completion request Tidings uses (others are ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    user: str | None = Field(default=None, max_length=256)
    n: int | None = Field(default=None, ge=1, le=1, description="Only 1 is supported.")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "tidings"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    """OpenAI's error body."""

    error: OpenAIErrorDetail


class OpenAIApiError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = OpenAIError(
            error=OpenAIErrorDetail(message=message, type=type_, param=param, code=code)
        )
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            self.body.model_dump(mode="json"), status_code=self.status, headers=self.headers
        )


def _from_api_error(exc: ApiError) -> OpenAIApiError:
    kinds = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}
    kind = kinds.get(exc.status, "server_error" if exc.status >= 500 else "invalid_request_error")
    return OpenAIApiError(exc.status, exc.message, type_=kind, code=exc.code, headers=exc.headers)


async def openai_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpenAIApiError)
    return exc.response()


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIError, "description": text}
    for status, text in {
        400: "Malformed request (`invalid_request_error`).",
        401: "A bearer token is required (GATEWAY_AUTH=jwt).",
        404: "The session belongs to someone else.",
        413: "The body or the message is too large.",
        415: "The body is not JSON.",
        429: "Rate limited; see Retry-After.",
        502: "The answer failed.",
        503: "The broker is unavailable.",
        504: "No answer started in time.",
    }.items()
}


@router.get("/models", response_model=ModelList, responses=_ERRORS, summary="List models")
async def models(ctx: ContextDep, request: Request) -> ModelList:
    """The model names clients may send; they all reach the same responder."""
    try:
        await ctx.authenticator.caller(request)
    except ApiError as exc:
        raise _from_api_error(exc) from None
    return ModelList(data=[ModelCard(id=name) for name in ctx.settings.models])


def _session_from(header: str | None, user: str | None, caller: Caller) -> str | None:
    """The session a request continues: `X-Session-Id`, else one derived from `user` -
    for an authenticated caller only, and from the caller's subject too, so it is theirs
    alone. An anonymous caller's `user` names no session: anyone could send the same one.
    """
    if header:
        if not _SESSION_RE.fullmatch(header):
            raise OpenAIApiError(
                400,
                "X-Session-Id is not a valid session id.",
                param="X-Session-Id",
                code="invalid_session_id",
            )
        return header
    if not user or caller.subject is None:
        return None
    bound = json.dumps([caller.subject, user], separators=(",", ":"))
    return "v1-" + hashlib.sha256(bound.encode()).hexdigest()[:32]


async def _read(request: Request, ctx: GatewayContext) -> CompletionRequest:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise OpenAIApiError(
            415, "Send the body as application/json.", code="unsupported_media_type"
        )
    limit = ctx.settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise OpenAIApiError(413, f"The body is larger than {limit} bytes.", code="too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise OpenAIApiError(413, f"The body is larger than {limit} bytes.", code="too_large")
    try:
        return CompletionRequest.model_validate_json(bytes(body))
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        if any(error["type"] == "json_invalid" for error in errors):
            raise OpenAIApiError(400, "The body is not valid JSON.", code="invalid_json") from None
        param = ".".join(str(p) for p in errors[0]["loc"]) if errors else None
        raise OpenAIApiError(400, describe_validation_errors(errors), param=param) from None


def _text_of(message: ChatMessage) -> str:
    """A message's text: its string content, or its text parts joined."""
    content = message.content
    if isinstance(content, list):
        return "".join(part.text or "" for part in content if part.type == "text")
    return content or ""


def _history(body: CompletionRequest, max_bytes: int) -> list[HistoryTurn]:
    """The conversation before the last message: user and assistant turns, oldest first.

    System and tool messages are left out (the responder's configuration decides how it
    answers); the turns kept are the latest that fit in `max_bytes` altogether.
    """
    turns: list[HistoryTurn] = []
    left = max_bytes
    for message in reversed(body.messages[:-1]):
        if message.role not in {"user", "assistant"}:
            continue
        content = _text_of(message)
        if not content.strip():
            continue
        size = len(content.encode())
        if size > left or len(turns) >= HISTORY_TURNS:
            break
        left -= size
        role: Literal["user", "assistant"] = "user" if message.role == "user" else "assistant"
        turns.append(HistoryTurn(role=role, text=content[:20_000]))
    return list(reversed(turns))


def _last_user_text(body: CompletionRequest, max_bytes: int) -> str:
    last = body.messages[-1]
    if last.role != "user":
        raise OpenAIApiError(400, "The last message must be the user's.", param="messages")
    content = _text_of(last)
    if not content.strip():
        raise OpenAIApiError(400, "The last user message is empty.", param="messages")
    if len(content.encode()) > max_bytes:
        raise OpenAIApiError(
            413, f"The message is longer than {max_bytes} bytes.", code="message_too_large"
        )
    return content


@router.post(
    "/chat/completions",
    responses={
        **_ERRORS,
        200: {
            "description": "A `chat.completion`, or `chat.completion.chunk` events with "
            "`stream: true`.",
            "content": {"application/json": {}, "text/event-stream": {}},
        },
    },
    summary="OpenAI-compatible chat completion",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(CompletionRequest)}},
        }
    },
)
async def chat_completions(
    request: Request,
    ctx: ContextDep,
    x_session_id: Annotated[str | None, Header(max_length=256)] = None,
) -> Any:
    """Send the last user message through Tidings and answer like OpenAI would."""
    try:
        caller = await ctx.authenticator.caller(request)
        body = await _read(request, ctx)
        text = _last_user_text(body, ctx.settings.max_message_bytes)
        check_rate(ctx, caller)
        shed_when_overloaded(ctx)
        session_id = await resolve_session(
            ctx, caller, _session_from(x_session_id, body.user, caller)
        )
        if body.stream:
            reserve_stream(ctx, caller)
        message = UserMessage(
            message_id=new_id(),
            session_id=session_id,
            user=caller.subject,
            text=text,
            history=_history(body, HISTORY_BYTES),
        )
        subscription = ctx.hub.subscribe(session_id)
        try:
            with bind(session_id=session_id, message_id=message.message_id):
                await publish_or_503(
                    ctx, message, child_traceparent(request.headers.get(TRACEPARENT_HEADER))
                )
                MESSAGES_ACCEPTED.inc()
        except ApiError:
            subscription.close()
            if body.stream:
                ctx.streams.release(caller.limit_key)
            raise
    except ApiError as exc:
        raise _from_api_error(exc) from None
    completion_id = f"chatcmpl-{message.message_id}"
    policy = _policy(ctx, caller)
    if body.stream:
        opened = OpenStream(subscription, lambda: ctx.streams.release(caller.limit_key))
        return EventSourceResponse(
            _chunks(opened, policy, message.message_id, completion_id, body.model),
            headers={**SSE_HEADERS, "X-Session-Id": session_id},
            ping=ctx.settings.sse_ping_s,
            send_timeout=ctx.settings.sse_send_timeout_s,
            background=release_on_loop(opened),
        )
    try:
        outcome = await _collect(subscription, policy, message.message_id)
    finally:
        subscription.close()
    if outcome.event == ERROR:
        raise _answer_error(outcome.data)
    return JSONResponse(
        _completion(completion_id, body.model, outcome.data),
        headers={"X-Session-Id": session_id, "Cache-Control": "no-store"},
    )


def _policy(ctx: GatewayContext, caller: Caller) -> StreamPolicy:
    settings = ctx.settings
    return StreamPolicy(
        retry_ms=settings.sse_retry_ms,
        start_timeout_s=settings.answer_start_timeout_s,
        idle_timeout_s=settings.answer_idle_timeout_s,
        unavailable_after_s=settings.unavailable_after_s,
        broker_down_for=ctx.broker_down_for,
        memory=ctx.memory,
        user=caller.subject,
    )


async def _collect(subscription: Any, policy: StreamPolicy, message_id: str) -> SseMessage:
    async for message in answer_messages(subscription, policy, message_id=message_id):
        if message.event in (DONE, ERROR):
            return message
    # The hub closed (shutdown) before the answer ended.
    return SseMessage(ERROR, {"reason": "unavailable", "message": "The gateway is stopping."})


def _answer_error(data: dict[str, Any]) -> OpenAIApiError:
    reason = data.get("reason", "failed")
    status = {"timeout": 504, "unavailable": 503, "cancelled": 409}.get(reason, 502)
    return OpenAIApiError(
        status,
        str(data.get("message") or "The answer failed."),
        type_="server_error" if status >= 500 else "invalid_request_error",
        code=str(data.get("code") or reason),
    )


def _usage(data: dict[str, Any]) -> dict[str, int]:
    usage = data.get("usage") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _completion(completion_id: str, model: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": data.get("text", "")},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(data),
        # Extension field: the knowledge documents the answer was grounded in. OpenAI
        # clients ignore unknown fields; the SDK keeps them (`completion.model_extra`).
        "sources": data.get("sources", []),
        # Extension field: why the answer took its form (`unanswered`: the knowledge base
        # has no answer; docs/events.md).
        "reason": data.get("reason"),
    }


def _chunk(
    completion_id: str,
    model: str,
    delta: dict[str, Any],
    finish: str | None = None,
    sources: list[Any] | None = None,
) -> ServerSentEvent:
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    if sources is not None:
        body["sources"] = sources  # extension field on the final chunk, as in `_completion`
    return ServerSentEvent(json.dumps(body, separators=(",", ":")))


async def _chunks(
    stream: OpenStream, policy: StreamPolicy, message_id: str, completion_id: str, model: str
) -> AsyncIterator[ServerSentEvent]:
    """`chat.completion.chunk` events, then `[DONE]`.

    OpenAI clients cannot take text back, so after a `reset` (a new attempt) text is held
    until `done`: if the final text continues what was sent, the rest is sent; otherwise
    the stream ends with an error rather than a garbled answer.
    """
    sent = ""
    held = False
    # No `retry:` hint here: OpenAI clients do not reconnect, and the official SDK turns a
    # retry-only event into an empty `data` it then fails to parse as JSON.
    try:
        yield _chunk(completion_id, model, {"role": "assistant", "content": ""})
        async for message in answer_messages(stream.subscription, policy, message_id=message_id):
            if message.event == RESET:
                held = True
            elif message.event == TOKEN and not held:
                text = str(message.data["delta"])
                sent += text
                yield _chunk(completion_id, model, {"content": text})
            elif message.event == DONE:
                final = str(message.data.get("text", ""))
                if not final.startswith(sent):
                    error = OpenAIApiError(
                        502, "The answer was restarted; retry the request.", type_="server_error"
                    )
                    yield ServerSentEvent(error.body.model_dump_json())
                    break
                if final[len(sent) :]:
                    yield _chunk(completion_id, model, {"content": final[len(sent) :]})
                yield _chunk(
                    completion_id, model, {}, "stop", sources=message.data.get("sources", [])
                )
                break
            elif message.event == ERROR:
                error = _answer_error(message.data)
                yield ServerSentEvent(error.body.model_dump_json())
                break
        yield ServerSentEvent("[DONE]")
    finally:
        stream.release()
