"""Which events become memory, and under which point id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tidings.common.events import (
    Event,
    MemoryStored,
    ResponseDelta,
    ResponseDone,
    ResponseError,
    ResponseStart,
    UserMessage,
)
from tidings.memory.turns import Turn, turn_from_event, turn_point_id

ASKED = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
ANSWERED = datetime(2026, 5, 1, 12, 0, 3, tzinfo=UTC)


def question(**overrides: object) -> UserMessage:
    fields: dict[str, object] = {
        "message_id": "m1",
        "session_id": "s1",
        "user": "alice",
        "text": "Where is my order 1234?",
        "ts": ASKED,
    }
    return UserMessage.model_validate(fields | overrides)


def answer(**overrides: object) -> ResponseDone:
    fields: dict[str, object] = {
        "message_id": "m1",
        "session_id": "s1",
        "attempt": "a1",
        "text": "Order 1234 shipped yesterday.",
        "source": "tool",
        "model": None,
        "ts": ANSWERED,
    }
    return ResponseDone.model_validate(fields | overrides)


def test_user_message_becomes_a_user_turn_with_its_payload() -> None:
    turn = turn_from_event(question())

    assert turn is not None
    assert turn.payload() == {
        "session_id": "s1",
        "user": "alice",
        "role": "user",
        "text": "Where is my order 1234?",
        "ts": "2026-05-01T12:00:00+00:00",
        "ts_epoch": ASKED.timestamp(),
        "message_id": "m1",
    }


def test_finished_answer_becomes_an_assistant_turn_with_source_model_and_attempt() -> None:
    turn = turn_from_event(answer(source="llm", model="smollm2"))

    assert turn is not None
    payload = turn.payload()
    assert payload["role"] == "assistant"
    assert payload["text"] == "Order 1234 shipped yesterday."
    assert payload["message_id"] == "m1"
    assert payload["session_id"] == "s1"
    assert (payload["source"], payload["model"], payload["attempt"]) == ("llm", "smollm2", "a1")
    assert payload["ts_epoch"] == ANSWERED.timestamp()
    assert payload["user"] is None  # answers do not carry the user; memory links it later


@pytest.mark.parametrize(
    "event",
    [
        ResponseStart(message_id="m1", session_id="s1", attempt="a1"),
        ResponseDelta(message_id="m1", session_id="s1", attempt="a1", seq=0, text="Order"),
        ResponseError(
            message_id="m1", session_id="s1", attempt="a1", code="llm_timeout", message="Sorry"
        ),
        MemoryStored(message_id="m1", session_id="s1", role="user", point_id="p", collection="c"),
    ],
    ids=["start", "delta", "error", "memory-stored"],
)
def test_partial_failed_and_foreign_events_are_not_turns(event: Event) -> None:
    assert turn_from_event(event) is None


def test_the_same_event_delivered_twice_maps_to_the_same_point() -> None:
    first = turn_from_event(question())
    again = turn_from_event(question(event_id="another-delivery", ts=ANSWERED))

    assert first is not None and again is not None
    assert first.point_id == again.point_id


def test_a_second_attempts_answer_overwrites_the_first() -> None:
    first = turn_from_event(answer(attempt="a1", text="Partial"))
    retry = turn_from_event(answer(attempt="a2", text="Order 1234 shipped yesterday."))

    assert first is not None and retry is not None
    assert first.point_id == retry.point_id


def test_question_and_answer_of_one_message_get_different_points() -> None:
    asked, answered = turn_from_event(question()), turn_from_event(answer())

    assert asked is not None and answered is not None
    assert asked.point_id != answered.point_id
    assert asked.partner_point_id == answered.point_id
    assert answered.partner_point_id == asked.point_id


def test_point_ids_are_stable_uuids_that_differ_per_message() -> None:
    ids = {turn_point_id(m, r) for m in ("m1", "m2") for r in ("user", "assistant")}

    assert len(ids) == 4
    assert all(uuid.UUID(i).version == 5 for i in ids)
    # Pinned: if ids changed between releases, redelivered events would duplicate old turns.
    assert turn_point_id("m1", "user") == "778f9510-7919-56b7-8d6d-ed2a9e6e76f3"


def test_payload_round_trips_and_orders_question_before_answer() -> None:
    asked, answered = turn_from_event(question()), turn_from_event(answer(ts=ASKED))
    assert asked is not None and answered is not None

    rebuilt = [Turn.from_payload(t.payload()) for t in (answered, asked)]

    assert rebuilt == [answered, asked]
    assert sorted(rebuilt, key=Turn.sort_key) == [asked, answered]
