"""Turning one fetch of Kafka records into a unit of work: pure, testable without Kafka.

A batch says which turns to embed and store, which records to dead-letter, and which
offsets to commit once all of that is done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from tidings.common.events import Event, parse_inbound_event, parse_response_event
from tidings.common.tracing import InvalidHeaderError, traceparent_from_headers
from tidings.memory.turns import Turn, turn_from_event

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Parser = Callable[[bytes], Event]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that is not a valid event of its topic, and why."""

    record: Record
    reason: str


@dataclass(slots=True)
class Batch:
    """The work for one fetch, and the offsets that are safe to commit once it is done."""

    turns: list[Turn] = field(default_factory=list)
    traceparents: dict[str, str] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: int = 0
    offsets: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        """How many records the batch covers."""
        return len(self.turns) + len(self.rejected) + self.skipped


def parsers_for(user_messages_topic: str, model_responses_topic: str) -> dict[str, Parser]:
    """Which parser validates the records of each consumed topic."""

    def parse_user(raw: bytes) -> Event:
        # A cancel request is valid on this topic; memory skips it (it is not a turn).
        return parse_inbound_event(raw)

    def parse_response(raw: bytes) -> Event:
        return parse_response_event(raw)

    return {user_messages_topic: parse_user, model_responses_topic: parse_response}


def plan_batch(
    records: Mapping[TopicPartition, Sequence[Record]],
    parsers: Mapping[str, Parser],
) -> Batch:
    """Classify fetched records into turns, skipped events and rejects.

    Every record, whatever becomes of it, moves its partition's commit offset past it:
    skipped and dead-lettered records must not be fetched again. When one point id
    appears twice (a redelivery within the fetch), the later event wins, as it would
    in Qdrant. An answer is attributed to the user of its question when the question is
    in the same batch.
    """
    batch = Batch()
    by_point: dict[str, Turn] = {}
    for tp, partition_records in records.items():
        for record in partition_records:
            batch.offsets[tp] = max(batch.offsets.get(tp, 0), record.offset + 1)
            outcome = _classify(record, parsers)
            if isinstance(outcome, Rejected):
                batch.rejected.append(outcome)
            elif outcome is None:
                batch.skipped += 1
            else:
                if by_point.pop(outcome.point_id, None) is not None:
                    batch.skipped += 1  # superseded by this later event
                by_point[outcome.point_id] = outcome
                traceparent = _traceparent(record)
                if traceparent:
                    batch.traceparents[outcome.point_id] = traceparent
    batch.turns = attribute_users(list(by_point.values()))
    return batch


def _classify(record: Record, parsers: Mapping[str, Parser]) -> Turn | Rejected | None:
    parser = parsers.get(record.topic)
    if parser is None:
        return Rejected(record, f"memory does not consume topic {record.topic!r}")
    if record.value is None:
        return Rejected(record, "empty record value (tombstone)")
    try:
        traceparent_from_headers(_headers(record))
        event = parser(record.value)
    except InvalidHeaderError as exc:
        return Rejected(record, str(exc))
    except ValidationError as exc:
        return Rejected(record, f"invalid event: {_short(exc)}")
    return turn_from_event(event)


def _traceparent(record: Record) -> str | None:
    """The record's traceparent (`_classify` rejected the records whose header is unusable)."""
    try:
        return traceparent_from_headers(_headers(record))
    except InvalidHeaderError:
        return None


def attribute_users(turns: list[Turn]) -> list[Turn]:
    """Give answers without a user the user of their question, when it is in `turns`."""
    users = {t.message_id: t.user for t in turns if t.role == "user" and t.user is not None}
    return [
        t.with_user(users[t.message_id])
        if t.role == "assistant" and t.user is None and t.message_id in users
        else t
        for t in turns
    ]


def _headers(record: Record) -> list[tuple[str, bytes | None]]:
    return list(record.headers or ())


def _short(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)[:3]
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in errors)
