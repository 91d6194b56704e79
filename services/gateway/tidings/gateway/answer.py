"""Turning a session's answer events into what one SSE client should see.

A message may be answered more than once (a responder died and the message was redelivered,
so a new `attempt` started). The client must never show two answers, so the stream follows
the latest attempt that started, tells the client to `reset` when it switches after text was
shown, drops late events of abandoned attempts and duplicated chunks, and forwards exactly
one terminal event (`done` or `error`) per message.

Chunks are forwarded only while they continue the text exactly: an attempt's chunks are
numbered from 0, so a chunk whose `seq` is not the next one means text this stream never
had (its beginning was evicted from the replay buffer, or the broker lost records: Tansu in
memory mode, right after a restart). Sending the rest would show a truncated answer, so the
client is told to `reset` (when it shows text) and gets the answer whole with its `done`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from tidings.common.events import ResponseDelta, ResponseDone, ResponseError, ResponseStart
from tidings.common.logging import get_logger
from tidings.gateway.metrics import ANSWER_GAPS
from tidings.gateway.replay import StreamEvent

log = get_logger(__name__)

START = "start"
TOKEN = "token"  # noqa: S105 - an SSE event name, not a credential
DONE = "done"
ERROR = "error"
RESET = "reset"
MAX_ANSWERS = 64
"""Answers whose state one stream keeps (a session-wide stream forgets older ones)."""


@dataclass(frozen=True, slots=True)
class SseMessage:
    """One SSE event to send: its name, JSON data and (for Kafka-backed events) its id."""

    event: str
    data: dict[str, Any]
    id: str | None = None


@dataclass(slots=True)
class _Answer:
    attempt: str | None = None
    last_seq: int = -1
    text_sent: bool = False
    finished: bool = False
    # A chunk of the followed attempt is missing: its text comes whole with the terminal event.
    gap: bool = False
    seen_attempts: set[str] = field(default_factory=set)


class AnswerStream:
    """Per-client state: feed it events in Kafka order, send what it returns.

    With `message_id`, only that message's answer is streamed and `finished` becomes true
    after its terminal event; without, every answer of the session is streamed.
    """

    def __init__(self, message_id: str | None = None) -> None:
        self._message_id = message_id
        # A stream that follows the whole session keeps the state of its latest answers
        # only (the oldest is forgotten first), however long it stays open.
        self._answers: OrderedDict[str, _Answer] = OrderedDict()

    @property
    def finished(self) -> bool:
        """True once the awaited message's answer has ended (never without a message_id)."""
        if self._message_id is None:
            return False
        answer = self._answers.get(self._message_id)
        return answer is not None and answer.finished

    @property
    def message_id(self) -> str | None:
        """The awaited message (None: every answer of the session)."""
        return self._message_id

    def finish(self) -> None:
        """The awaited message's answer was delivered another way (from history): end."""
        if self._message_id is not None:
            self._answers.setdefault(self._message_id, _Answer()).finished = True

    def has_begun(self, message_id: str) -> bool:
        """True once any event of `message_id`'s answer has been fed."""
        return message_id in self._answers

    def feed(self, item: StreamEvent, *, seen: bool = False) -> list[SseMessage]:
        """The SSE messages `item` produces for this client (often one, sometimes none).

        `seen`: the client already has this event (it resumed after it), so its chunks are
        taken as they come, whatever this replica's buffer still holds before them.
        """
        event = item.event
        if self._message_id is not None and event.message_id != self._message_id:
            return []
        answer = self._answers.get(event.message_id)
        if answer is None:
            answer = self._answers[event.message_id] = _Answer()
            while len(self._answers) > MAX_ANSWERS:
                self._answers.popitem(last=False)
        if answer.finished:
            return []
        if isinstance(event, ResponseStart):
            return self._start(answer, item, event)
        if answer.attempt is None:
            # The start was evicted from the replay buffer; follow the attempt we see.
            answer.attempt = event.attempt
        if isinstance(event, ResponseDelta):
            return self._delta(answer, item, event, seen)
        if isinstance(event, ResponseError):
            if event.attempt != answer.attempt:
                # An abandoned attempt failing says nothing about the one still running.
                return []
            answer.finished = True
            return [SseMessage(ERROR, _error_data(event), item.id)]
        return self._done(answer, item, event)

    def _start(self, answer: _Answer, item: StreamEvent, event: ResponseStart) -> list[SseMessage]:
        if event.attempt == answer.attempt or event.attempt in answer.seen_attempts:
            return []
        messages = []
        if answer.text_sent:
            messages.append(SseMessage(RESET, _ids(event)))
        answer.attempt = event.attempt
        answer.seen_attempts.add(event.attempt)
        answer.last_seq = -1
        answer.text_sent = False
        answer.gap = False
        messages.append(SseMessage(START, _start_data(event), item.id))
        return messages

    def _delta(
        self, answer: _Answer, item: StreamEvent, event: ResponseDelta, seen: bool
    ) -> list[SseMessage]:
        if event.attempt != answer.attempt or event.seq <= answer.last_seq:
            return []
        expected = answer.last_seq + 1
        answer.last_seq = event.seq
        if answer.gap:
            return []
        if event.seq != expected and not seen:
            answer.gap = True
            ANSWER_GAPS.inc()
            log.warning(
                "answer chunks missing from this stream; the answer follows whole with its end",
                message_id=event.message_id,
                attempt=event.attempt,
                expected_seq=expected,
                seq=event.seq,
                partition=item.partition,
                offset=item.offset,
            )
            if not answer.text_sent:
                return []
            answer.text_sent = False
            return [SseMessage(RESET, _ids(event))]
        answer.text_sent = True
        return [SseMessage(TOKEN, _token_data(event), item.id)]

    def _done(self, answer: _Answer, item: StreamEvent, event: ResponseDone) -> list[SseMessage]:
        messages = []
        if event.attempt != answer.attempt and answer.text_sent:
            # A complete answer from another attempt ends the message (it carries the full
            # text); the partial text of the attempt we were following must go.
            messages.append(SseMessage(RESET, _ids(event)))
        answer.finished = True
        messages.append(SseMessage(DONE, _done_data(event), item.id))
        return messages


def _ids(event: ResponseStart | ResponseDelta | ResponseDone | ResponseError) -> dict[str, Any]:
    return {"message_id": event.message_id, "attempt": event.attempt}


def _start_data(event: ResponseStart) -> dict[str, Any]:
    data = _ids(event)
    if event.source is not None:
        data["source"] = event.source
    if event.model is not None:
        data["model"] = event.model
    if event.tool is not None:
        data["tool"] = event.tool
    return data


def _token_data(event: ResponseDelta) -> dict[str, Any]:
    return {**_ids(event), "seq": event.seq, "delta": event.text}


def _done_data(event: ResponseDone) -> dict[str, Any]:
    return {
        **_ids(event),
        "text": event.text,
        "source": event.source,
        "reason": event.reason,
        "model": event.model,
        "tool": event.tool,
        "usage": event.usage.model_dump(mode="json"),
        "timings": event.timings.model_dump(mode="json"),
        "sources": [source.model_dump(mode="json") for source in event.sources],
    }


def _error_data(event: ResponseError) -> dict[str, Any]:
    return {**_ids(event), "code": event.code, "message": event.message, "reason": event.reason}


def reset_message(message_id: str | None) -> SseMessage:
    """Tell the client to discard the partial text it shows (no id: not a Kafka event)."""
    return SseMessage(RESET, {"message_id": message_id, "attempt": None})


def gateway_error(message_id: str | None, reason: str, code: str, message: str) -> SseMessage:
    """A terminal `error` the gateway itself decides (timeout, broker unavailable)."""
    return SseMessage(
        ERROR,
        {
            "message_id": message_id,
            "attempt": None,
            "code": code,
            "message": message,
            "reason": reason,
        },
    )


def history_done(message_id: str, text: str, source: str | None) -> SseMessage:
    """The finished answer read back from history, when the stream can no longer be replayed."""
    return SseMessage(
        DONE,
        {
            "message_id": message_id,
            "attempt": None,
            "text": text,
            "source": source,
            "model": None,
            "usage": {},
            "timings": {},
            "sources": [],
            "from_history": True,
        },
    )
