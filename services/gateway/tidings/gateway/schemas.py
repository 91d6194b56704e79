"""Bodies of the gateway's HTTP API."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

# Session ids are bearer-like handles to a conversation's stream: the server issues 128-bit
# random ones, and a client-chosen one must at least be long and plain enough to be safe in
# URLs, logs and Kafka keys.
SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
MESSAGE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# SSE ids are Kafka positions and record timestamps, `partition-offset-timestamp` (older
# gateways sent `partition-offset`); see tidings.gateway.resume.
EVENT_ID_PATTERN = r"^[0-9]{1,6}-[0-9]{1,19}(-[0-9]{1,19})?$"


class ChatRequest(BaseModel):
    """`POST /chat`: one user message."""

    model_config = ConfigDict(extra="forbid", strict=True)

    message: str = Field(
        description="What the user wrote (UTF-8, not blank; at most GATEWAY_MAX_MESSAGE_BYTES).",
        # Published only: the handler checks these itself to answer with precise codes.
        json_schema_extra={"minLength": 1, "pattern": r"\S"},
    )
    session_id: str | None = Field(
        default=None,
        pattern=SESSION_ID_PATTERN,
        description="Conversation to continue; omit it to start a new one.",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form client context (page URL, locale, ...), passed to the responder.",
    )


class ChatAccepted(BaseModel):
    """`POST /chat` answer (202): where to follow the reply."""

    session_id: str = Field(description="Conversation id; send it with the next message.")
    message_id: str = Field(description="Id of the accepted message; the answer refers to it.")
    stream_url: str = Field(description="Relative URL of the SSE stream carrying the answer.")


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(description="Stable machine-readable reason, e.g. `empty_message`.")
    message: str = Field(description="Human-readable explanation.")


class ErrorBody(BaseModel):
    """Body of every error answer."""

    error: ErrorDetail


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema with its `$defs` inlined, for `openapi_extra` request bodies."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*")


def _query_value(value: str) -> str:
    # Ids that match the patterns above need no escaping (the common case, kept cheap).
    return value if _URL_SAFE.fullmatch(value) else quote(value, safe="")


def stream_url(session_id: str, message_id: str | None = None) -> str:
    """The `/stream` URL for a session, optionally narrowed to one answer."""
    url = f"/stream?session_id={_query_value(session_id)}"
    if message_id is not None:
        url += f"&message_id={_query_value(message_id)}"
    return url
