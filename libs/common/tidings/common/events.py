"""The event contract between the services.

Every Kafka value is a UTF-8 JSON object with a `schema` field naming its type and version.
Topics are keyed by `session_id`, so one session's events stay in order on one partition.
Unknown fields are ignored so that older consumers keep working when producers add fields;
an event that does not validate is dead-lettered by its consumer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

USER_MESSAGE: Final = "user_message.v1"
MESSAGE_CANCEL: Final = "message.cancel.v1"
RESPONSE_START: Final = "response.start.v1"
RESPONSE_DELTA: Final = "response.delta.v1"
RESPONSE_DONE: Final = "response.done.v1"
RESPONSE_ERROR: Final = "response.error.v1"
MEMORY_STORED: Final = "memory.stored.v1"

AnswerSource = Literal["faq", "knowledge", "llm", "tool", "fallback"]
# Why an answer took its form, when that matters to whoever counts answers (`response.done`):
# `unanswered`: the knowledge base does not answer this question about the store (an
# honest "I don't know" with the fallback contact; a candidate for a human handoff);
# `quoted`: a generated answer failed the grounding check and the source was quoted instead;
# `off_topic`: a general request (not about the store) answered by the LLM;
# `withheld`: such an answer made claims about the store and was replaced.
AnswerReason = Literal["unanswered", "quoted", "off_topic", "withheld"]
ErrorReason = Literal["failed", "cancelled", "timeout", "unavailable"]


def new_id() -> str:
    """A random 128-bit id as 32 hex characters."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    event_id: str = Field(default_factory=new_id, description="Unique id of this event.")
    ts: datetime = Field(default_factory=utcnow, description="When it was produced (UTC).")

    def to_bytes(self) -> bytes:
        """The Kafka value: compact JSON with `schema` first-class."""
        return self.model_dump_json(by_alias=True).encode()


class HistoryTurn(BaseModel):
    """One earlier turn of a conversation that the client sent with its message."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Literal["user", "assistant"]
    text: str = Field(max_length=20_000)


class UserMessage(Event):
    """A user's chat message, accepted by the gateway (topic `user_messages`)."""

    schema_: Literal["user_message.v1"] = Field(default=USER_MESSAGE, alias="schema")
    message_id: str = Field(description="Server-issued id of this message; answers refer to it.")
    session_id: str = Field(description="Conversation the message belongs to; the Kafka key.")
    user: str | None = Field(
        default=None, description="Authenticated subject that sent it, or null when anonymous."
    )
    text: str = Field(min_length=1, description="What the user wrote.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Free-form client metadata (page URL, locale, ...)."
    )
    history: list[HistoryTurn] | None = Field(
        default=None,
        max_length=200,
        description=(
            "The conversation before this message, oldest first, when the client sent it "
            "(the OpenAI-compatible API does); null: the responder asks the memory service."
        ),
    )


class CancelRequest(Event):
    """A client asked to stop the answer to a message (topic `user_messages`).

    It travels on the message's own partition (same key), so the responder that owns the
    message sees it, whichever gateway replica the cancel came through.
    """

    schema_: Literal["message.cancel.v1"] = Field(default=MESSAGE_CANCEL, alias="schema")
    message_id: str = Field(description="The user message whose answer should stop.")
    session_id: str = Field(description="Conversation; the Kafka key.")
    user: str | None = Field(default=None, description="Subject that asked, or null.")


class ResponseEvent(Event):
    """Fields of every event about one answer (topic `model_responses`)."""

    message_id: str = Field(description="The user message this answers.")
    session_id: str = Field(description="Conversation; the Kafka key.")
    attempt: str = Field(
        description=(
            "Id of this generation attempt. A redelivered message gets a new attempt; "
            "clients discard text from an earlier attempt."
        )
    )


class ResponseStart(ResponseEvent):
    """A responder began answering."""

    schema_: Literal["response.start.v1"] = Field(default=RESPONSE_START, alias="schema")
    source: AnswerSource | None = Field(
        default=None, description="Where the answer comes from, when already known."
    )
    model: str | None = Field(default=None, description="Model name for LLM answers.")
    tool: str | None = Field(
        default=None,
        description="For tool answers: the tool's name (order_status, recommendations).",
    )


class ResponseDelta(ResponseEvent):
    """A chunk of answer text; chunks of one attempt have increasing `seq` from 0."""

    schema_: Literal["response.delta.v1"] = Field(default=RESPONSE_DELTA, alias="schema")
    seq: int = Field(ge=0, description="Position of this chunk within its attempt.")
    text: str = Field(description="The text to append.")


class SourceRef(BaseModel):
    """A knowledge-base document an answer was grounded in."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    title: str = Field(description="Document title (with its heading path when useful).")
    url: str | None = Field(default=None, description="Where a person can read it.")
    score: float | None = Field(default=None, description="Retrieval score, higher is closer.")


class Usage(BaseModel):
    """Token counts reported by the backend, when it reports them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Timings(BaseModel):
    """Where the time went, in milliseconds."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    queue_ms: float | None = Field(
        default=None, description="From the user message's timestamp to the start of work."
    )
    first_token_ms: float | None = Field(
        default=None, description="From the start of work to the first text."
    )
    total_ms: float | None = Field(default=None, description="From start of work to done.")


class ResponseDone(ResponseEvent):
    """The answer is complete. Terminal: exactly one of done/error ends each answer."""

    schema_: Literal["response.done.v1"] = Field(default=RESPONSE_DONE, alias="schema")
    text: str = Field(description="The full answer text.")
    source: AnswerSource = Field(
        description="faq (canned), knowledge (grounded in the knowledge base), llm, tool or "
        "fallback."
    )
    reason: AnswerReason | None = Field(
        default=None,
        description="unanswered (the knowledge base has no answer), quoted (the source was "
        "quoted after a generated answer failed the check), off_topic, withheld.",
    )
    model: str | None = Field(default=None, description="Model name for LLM answers.")
    tool: str | None = Field(
        default=None,
        description="For tool answers: the tool's name (order_status, recommendations).",
    )
    usage: Usage = Field(default_factory=Usage)
    timings: Timings = Field(default_factory=Timings)
    sources: list[SourceRef] = Field(
        default_factory=list, description="Knowledge documents the answer used, if any."
    )


class ResponseError(ResponseEvent):
    """The answer failed. Terminal."""

    schema_: Literal["response.error.v1"] = Field(default=RESPONSE_ERROR, alias="schema")
    code: str = Field(description="Stable machine-readable reason, e.g. `llm_unavailable`.")
    message: str = Field(description="Human-readable explanation, safe to show to a user.")
    reason: ErrorReason = Field(
        default="failed",
        description="Why it ended: failed, cancelled (by the client), timeout, unavailable.",
    )


class MemoryStored(Event):
    """A turn was embedded and written to Qdrant (topic `memory_events`)."""

    schema_: Literal["memory.stored.v1"] = Field(default=MEMORY_STORED, alias="schema")
    message_id: str = Field(description="The user message id (answers share their question's).")
    session_id: str
    role: Literal["user", "assistant"]
    point_id: str = Field(description="Deterministic Qdrant point id of the turn.")
    collection: str = Field(description="Qdrant collection written to.")


AnyResponseEvent = Annotated[
    ResponseStart | ResponseDelta | ResponseDone | ResponseError,
    Field(discriminator="schema_"),
]
TERMINAL_SCHEMAS = frozenset({RESPONSE_DONE, RESPONSE_ERROR})

AnyInboundEvent = Annotated[UserMessage | CancelRequest, Field(discriminator="schema_")]

AnyEvent = Annotated[
    UserMessage
    | CancelRequest
    | ResponseStart
    | ResponseDelta
    | ResponseDone
    | ResponseError
    | MemoryStored,
    Field(discriminator="schema_"),
]

_any_event: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)
_response_event: TypeAdapter[AnyResponseEvent] = TypeAdapter(AnyResponseEvent)
_inbound_event: TypeAdapter[AnyInboundEvent] = TypeAdapter(AnyInboundEvent)


def parse_event(raw: bytes | str) -> AnyEvent:
    """Parse any event of the contract; raises `pydantic.ValidationError` if it is not one."""
    return _any_event.validate_json(raw)


def parse_response_event(raw: bytes | str) -> AnyResponseEvent:
    """Parse a `model_responses` event; raises `pydantic.ValidationError` otherwise."""
    return _response_event.validate_json(raw)


def parse_inbound_event(raw: bytes | str) -> UserMessage | CancelRequest:
    """Parse a `user_messages` event (a message or a cancel request)."""
    return _inbound_event.validate_json(raw)


def parse_user_message(raw: bytes | str) -> UserMessage:
    """Parse a `user_messages` event; raises `pydantic.ValidationError` otherwise."""
    return UserMessage.model_validate_json(raw)


def is_terminal(event: Event) -> bool:
    """True for the events that end an answer (`done`, `error`)."""
    return isinstance(event, ResponseDone | ResponseError)
