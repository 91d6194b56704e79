"""How one fetch of records becomes work: turns to store, rejects, offsets to commit."""

from __future__ import annotations

from collections import defaultdict

from aiokafka.structs import ConsumerRecord, TopicPartition

from tidings.common.events import Event, ResponseDelta, ResponseDone, ResponseStart, UserMessage
from tidings.common.tracing import new_traceparent
from tidings.memory.batch import Record, parsers_for, plan_batch

USER_TOPIC = "p-user_messages"
RESPONSE_TOPIC = "p-model_responses"
PARSERS = parsers_for(USER_TOPIC, RESPONSE_TOPIC)


class Log:
    """Records appended to topic partitions, with offsets as a broker would give them."""

    def __init__(self) -> None:
        self.records: dict[TopicPartition, list[Record]] = defaultdict(list)

    def add(
        self,
        topic: str,
        value: bytes | Event | None,
        *,
        partition: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> Record:
        tp = TopicPartition(topic, partition)
        raw = value.to_bytes() if isinstance(value, Event) else value
        record: Record = ConsumerRecord(
            topic=topic,
            partition=partition,
            offset=len(self.records[tp]) + 10,
            timestamp=0,
            timestamp_type=0,
            key=b"s1",
            value=raw,
            checksum=None,
            serialized_key_size=2,
            serialized_value_size=len(raw or b""),
            headers=headers or [],
        )
        self.records[tp].append(record)
        return record


def question(message_id: str = "m1", user: str | None = "alice", text: str = "Hi") -> UserMessage:
    return UserMessage(message_id=message_id, session_id="s1", user=user, text=text)


def done(message_id: str = "m1", attempt: str = "a1", text: str = "Hello!") -> ResponseDone:
    return ResponseDone(
        message_id=message_id, session_id="s1", attempt=attempt, text=text, source="faq"
    )


def test_questions_and_finished_answers_are_kept_and_stream_events_skipped() -> None:
    log = Log()
    log.add(USER_TOPIC, question())
    log.add(RESPONSE_TOPIC, ResponseStart(message_id="m1", session_id="s1", attempt="a1"))
    for seq, piece in enumerate(["Hel", "lo!"]):
        log.add(
            RESPONSE_TOPIC,
            ResponseDelta(message_id="m1", session_id="s1", attempt="a1", seq=seq, text=piece),
        )
    log.add(RESPONSE_TOPIC, done())

    batch = plan_batch(log.records, PARSERS)

    assert [(t.role, t.text) for t in batch.turns] == [("user", "Hi"), ("assistant", "Hello!")]
    assert batch.skipped == 3
    assert batch.rejected == []
    assert batch.records == 5


def test_offsets_move_past_every_record_including_skipped_and_rejected_ones() -> None:
    log = Log()
    log.add(USER_TOPIC, question(), partition=0)
    log.add(USER_TOPIC, b"{not json", partition=0)
    log.add(USER_TOPIC, question("m2"), partition=2)
    log.add(
        RESPONSE_TOPIC,
        ResponseStart(message_id="m1", session_id="s1", attempt="a1"),
        partition=1,
    )

    batch = plan_batch(log.records, PARSERS)

    # The log starts at offset 10: commit = last offset + 1 per partition.
    assert batch.offsets == {
        TopicPartition(USER_TOPIC, 0): 12,
        TopicPartition(USER_TOPIC, 2): 11,
        TopicPartition(RESPONSE_TOPIC, 1): 11,
    }


def test_invalid_records_are_rejected_with_a_reason() -> None:
    log = Log()
    garbage = log.add(USER_TOPIC, b"\xff\xfe not json")
    wrong_schema = log.add(USER_TOPIC, done())  # an answer on the questions topic
    unknown = log.add(RESPONSE_TOPIC, b'{"schema": "response.tool_call.v9", "message_id": "m"}')
    empty = log.add(
        USER_TOPIC,
        b'{"schema": "user_message.v1", "message_id": "m", "session_id": "s", "text": ""}',
    )
    tombstone = log.add(RESPONSE_TOPIC, None)

    batch = plan_batch(log.records, PARSERS)

    assert batch.turns == []
    reasons = {where(r.record): r.reason for r in batch.rejected}
    assert set(reasons) == {where(r) for r in (garbage, wrong_schema, unknown, empty, tombstone)}
    assert reasons[where(garbage)].startswith("invalid event: ")
    assert "schema" in reasons[where(wrong_schema)]
    assert "schema" in reasons[where(unknown)]
    assert "text" in reasons[where(empty)]
    assert "tombstone" in reasons[where(tombstone)]


def where(record: Record) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


def test_a_redelivered_event_in_the_same_fetch_is_stored_once_with_the_latest_text() -> None:
    log = Log()
    log.add(RESPONSE_TOPIC, done(attempt="a1", text="First try"))
    log.add(RESPONSE_TOPIC, done(attempt="a2", text="Second try"))

    batch = plan_batch(log.records, PARSERS)

    assert [(t.attempt, t.text) for t in batch.turns] == [("a2", "Second try")]
    assert batch.records == 2


def test_answer_is_attributed_to_the_user_of_its_question_in_the_same_fetch() -> None:
    log = Log()
    log.add(USER_TOPIC, question("m1", user="alice"))
    log.add(USER_TOPIC, question("m2", user=None))
    log.add(RESPONSE_TOPIC, done("m1"))
    log.add(RESPONSE_TOPIC, done("m2"))
    log.add(RESPONSE_TOPIC, done("m3"))

    batch = plan_batch(log.records, PARSERS)

    users = {(t.role, t.message_id): t.user for t in batch.turns}
    assert users[("assistant", "m1")] == "alice"
    assert users[("assistant", "m2")] is None  # anonymous question
    assert users[("assistant", "m3")] is None  # question not in this fetch


def test_trace_context_of_each_turn_is_kept_for_its_memory_event() -> None:
    log = Log()
    traceparent = new_traceparent()
    log.add(USER_TOPIC, question(), headers=[("traceparent", traceparent.encode())])
    log.add(RESPONSE_TOPIC, done())

    batch = plan_batch(log.records, PARSERS)

    asked, answered = batch.turns
    assert batch.traceparents == {asked.point_id: traceparent}
    assert answered.point_id not in batch.traceparents
