"""What one SSE client is sent: one answer per message, resets on retries, a clear end."""

from __future__ import annotations

from gateway_fakes import Positions, delta, done, error, start

from tidings.gateway.answer import AnswerStream, SseMessage
from tidings.gateway.replay import AnswerEvent


def run(stream: AnswerStream, events: list[AnswerEvent]) -> list[SseMessage]:
    kafka = Positions()
    sent: list[SseMessage] = []
    for event in events:
        sent.extend(stream.feed(kafka.wrap(event)))
    return sent


def names(messages: list[SseMessage]) -> list[str]:
    return [message.event for message in messages]


def test_a_plain_answer_is_start_tokens_done_with_kafka_ids() -> None:
    stream = AnswerStream("m1")

    sent = run(stream, [start(), delta(0, "Hel"), delta(1, "lo"), done("Hello")])

    assert names(sent) == ["start", "token", "token", "done"]
    assert [message.id for message in sent] == ["0-0", "0-1", "0-2", "0-3"]
    assert sent[0].data == {"message_id": "m1", "attempt": "a1", "source": "llm", "model": "smol"}
    assert sent[1].data == {"message_id": "m1", "attempt": "a1", "seq": 0, "delta": "Hel"}
    assert sent[3].data["text"] == "Hello"
    assert sent[3].data["source"] == "llm"
    assert set(sent[3].data) >= {"usage", "timings", "model"}
    assert stream.finished


def test_the_stream_is_finished_only_by_its_own_message_terminal_event() -> None:
    stream = AnswerStream("m2")

    sent = run(stream, [start("m1"), done("other", "m1"), start("m2")])

    assert names(sent) == ["start"]
    assert not stream.finished
    assert names(run(stream, [error("m2")])) == ["error"]
    assert stream.finished


def test_error_data_carries_code_message_and_reason() -> None:
    sent = run(AnswerStream("m1"), [start(), error()])

    assert sent[-1].data == {
        "message_id": "m1",
        "attempt": "a1",
        "code": "llm_unavailable",
        "message": "The assistant is unavailable.",
        "reason": "failed",
    }


def test_a_new_attempt_after_text_tells_the_client_to_reset() -> None:
    stream = AnswerStream("m1")

    sent = run(
        stream,
        [
            start(attempt="a1"),
            delta(0, "Half an ans", attempt="a1"),
            start(attempt="a2"),
            delta(0, "Full answer", attempt="a2"),
            done("Full answer", attempt="a2"),
        ],
    )

    assert names(sent) == ["start", "token", "reset", "start", "token", "done"]
    assert sent[2].data == {"message_id": "m1", "attempt": "a2"}
    # The reset shares the Kafka record of the new start, so it has no id of its own.
    assert sent[2].id is None


def test_a_new_attempt_before_any_text_needs_no_reset() -> None:
    sent = run(
        AnswerStream("m1"), [start(attempt="a1"), start(attempt="a2"), done("x", "m1", "a2")]
    )

    assert names(sent) == ["start", "start", "done"]


def test_late_chunks_of_an_abandoned_attempt_are_dropped() -> None:
    sent = run(
        AnswerStream("m1"),
        [
            start(attempt="a1"),
            start(attempt="a2"),
            delta(0, "zombie", attempt="a1"),
            error(attempt="a1"),
            delta(0, "live", attempt="a2"),
            done("live", attempt="a2"),
        ],
    )

    assert names(sent) == ["start", "start", "token", "done"]
    assert sent[2].data["delta"] == "live"


def test_a_complete_answer_from_another_attempt_replaces_the_partial_one() -> None:
    sent = run(
        AnswerStream("m1"),
        [start(attempt="a1"), start(attempt="a2"), delta(0, "par", attempt="a2"), done("A", "m1")],
    )

    assert names(sent) == ["start", "start", "token", "reset", "done"]
    assert sent[-1].data["text"] == "A"


def test_duplicated_chunks_and_events_after_the_end_are_not_sent_twice() -> None:
    stream = AnswerStream(None)

    sent = run(
        stream,
        [
            start(),
            start(),
            delta(0, "a"),
            delta(0, "a"),
            delta(1, "b"),
            done("ab"),
            done("ab"),
            start(attempt="a9"),
            delta(0, "again", attempt="a9"),
        ],
    )

    assert names(sent) == ["start", "token", "token", "done"]


def test_a_session_stream_carries_every_answer_and_never_finishes() -> None:
    stream = AnswerStream(None)

    sent = run(stream, [start("m1"), done("one", "m1"), start("m2"), done("two", "m2")])

    assert [(m.event, m.data["message_id"]) for m in sent] == [
        ("start", "m1"),
        ("done", "m1"),
        ("start", "m2"),
        ("done", "m2"),
    ]
    assert not stream.finished


def test_an_answer_whose_start_was_evicted_still_streams() -> None:
    sent = run(AnswerStream("m1"), [delta(3, "tail"), done("head tail")])

    assert names(sent) == ["token", "done"]
