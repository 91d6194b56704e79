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


def test_an_answer_whose_beginning_was_evicted_comes_whole_with_its_done() -> None:
    # Chunks 0-2 are no longer buffered: "tail" alone would show a truncated answer.
    sent = run(AnswerStream("m1"), [delta(3, "tail"), done("head tail")])

    assert names(sent) == ["done"]
    assert sent[0].data["text"] == "head tail"


def test_an_answer_seen_from_its_first_chunk_streams_without_its_start() -> None:
    sent = run(AnswerStream("m1"), [delta(0, "head"), delta(1, " tail"), done("head tail")])

    assert names(sent) == ["token", "token", "done"]


def test_events_the_broker_lost_never_leave_a_truncated_answer_on_screen() -> None:
    # The chaos drill's broker restart: a live stream never received the start and the first
    # two chunks (Tansu lost the records), then the rest arrived.
    sent = run(
        AnswerStream("m1"),
        [delta(2, "make a"), delta(3, " story"), done("You said: make a story")],
    )

    assert names(sent) == ["done"]
    assert sent[0].data["text"] == "You said: make a story"


def test_a_chunk_missing_mid_answer_resets_the_client_and_done_brings_the_text() -> None:
    sent = run(
        AnswerStream("m1"),
        [
            start(),
            delta(0, "You"),
            delta(1, " said"),
            delta(3, " a"),  # chunk 2 never arrived
            delta(4, " story"),
            done("You said: a story"),
        ],
    )

    assert names(sent) == ["start", "token", "token", "reset", "done"]
    assert sent[3].data == {"message_id": "m1", "attempt": "a1"}
    assert sent[3].id is None


def test_a_new_attempt_after_a_gap_streams_normally() -> None:
    sent = run(
        AnswerStream("m1"),
        [
            start(attempt="a1"),
            delta(0, "Hal", attempt="a1"),
            delta(2, "swer", attempt="a1"),
            start(attempt="a2"),
            delta(0, "Full", attempt="a2"),
            delta(1, " answer", attempt="a2"),
            done("Full answer", attempt="a2"),
        ],
    )

    assert names(sent) == ["start", "token", "reset", "start", "token", "token", "done"]


def test_chunks_the_client_already_has_are_taken_as_they_come() -> None:
    # A resumed stream primes the client's state with what it saw; that this replica's
    # buffer starts mid-answer is no gap for the client, which had the beginning.
    kafka = Positions()
    stream = AnswerStream("m1")
    for event in [delta(5, "seen"), delta(6, " too")]:
        stream.feed(kafka.wrap(event), seen=True)  # what it returns is not sent

    sent = [
        m for e in [delta(7, " new"), done("... seen too new")] for m in stream.feed(kafka.wrap(e))
    ]

    assert names(sent) == ["token", "done"]
