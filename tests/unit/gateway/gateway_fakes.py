"""Builders and fakes shared by the gateway unit tests (pure logic, nothing running)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from tidings.common.events import (
    ResponseDelta,
    ResponseDone,
    ResponseError,
    ResponseStart,
    UserMessage,
)
from tidings.gateway.publisher import PublishError
from tidings.gateway.replay import AnswerEvent, StreamEvent
from tidings.gateway.streaming import StreamPolicy

SESSION = "session-0001"


def stream_policy() -> StreamPolicy:
    """A stream's bounds for tests: no memory, the broker never down."""
    return StreamPolicy(
        retry_ms=1000,
        start_timeout_s=5.0,
        unavailable_after_s=10.0,
        broker_down_for=lambda: 0.0,
        memory=None,
        user=None,
    )


class Positions:
    """Hands out increasing Kafka offsets, like one partition would.

    With `clock_ms`, records carry timestamps too (`clock_ms` + 10 ms per record) and so do
    their ids (`P-O-T`); without, ids are position-only (`P-O`, as older gateways sent).
    """

    def __init__(self, partition: int = 0, *, clock_ms: int | None = None) -> None:
        self.partition = partition
        self.offset = 0
        self.clock_ms = clock_ms

    def wrap(self, event: AnswerEvent, *, at: float | None = None) -> StreamEvent:
        received_at = time.monotonic() if at is None else at
        item = StreamEvent(self.partition, self.offset, event, received_at, timestamp=self.clock_ms)
        self.offset += 1
        if self.clock_ms is not None:
            self.clock_ms += 10
        return item

    def broker_restarted(self, down_ms: int = 5_000) -> None:
        """The broker lost its log: offsets start again at 0, some time later."""
        self.offset = 0
        if self.clock_ms is not None:
            self.clock_ms += down_ms


def start(message_id: str = "m1", attempt: str = "a1", session_id: str = SESSION) -> ResponseStart:
    return ResponseStart(
        message_id=message_id, session_id=session_id, attempt=attempt, source="llm", model="smol"
    )


def delta(
    seq: int, text: str, message_id: str = "m1", attempt: str = "a1", session_id: str = SESSION
) -> ResponseDelta:
    return ResponseDelta(
        message_id=message_id, session_id=session_id, attempt=attempt, seq=seq, text=text
    )


def done(
    text: str, message_id: str = "m1", attempt: str = "a1", session_id: str = SESSION
) -> ResponseDone:
    return ResponseDone(
        message_id=message_id, session_id=session_id, attempt=attempt, text=text, source="llm"
    )


def error(message_id: str = "m1", attempt: str = "a1", session_id: str = SESSION) -> ResponseError:
    return ResponseError(
        message_id=message_id,
        session_id=session_id,
        attempt=attempt,
        code="llm_unavailable",
        message="The assistant is unavailable.",
    )


@dataclass
class FakePublisher:
    """Records what would have been sent to Kafka; can be told to fail."""

    running: bool = True
    fail_with: Exception | None = None
    sent: list[tuple[UserMessage, str]] = field(default_factory=list)

    async def publish(self, message: UserMessage, *, traceparent: str) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((message, traceparent))


def broker_down() -> PublishError:
    return PublishError("KafkaTimeoutError")


@dataclass
class SseEvent:
    event: str | None
    data: Any
    id: str | None


def parse_sse(text: str) -> list[SseEvent]:
    """Events (not comments) of an SSE body; `data` is decoded JSON."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            events.append(
                SseEvent(fields.get("event"), json.loads(fields["data"]), fields.get("id"))
            )
    return events
