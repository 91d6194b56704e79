"""A broker that lost its log (offsets from 0 again): the fan-out notices, streams wait for
the very event their id names, and a client never gets text again without a `reset`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndTimestamp
from gateway_fakes import (
    SESSION,
    FakePublisher,
    Positions,
    delta,
    done,
    parse_sse,
    start,
    stream_policy,
)

from tidings.common.settings import KafkaSettings
from tidings.gateway import streaming
from tidings.gateway.answer import SseMessage
from tidings.gateway.app import create_app
from tidings.gateway.fanout import ResponseFanout, continue_at
from tidings.gateway.hub import DUPLICATE, LOG_RESTARTED, FanoutHub, Mark
from tidings.gateway.readiness import Readiness
from tidings.gateway.replay import ReplayBuffer, StreamEvent
from tidings.gateway.settings import GatewaySettings
from tidings.gateway.streaming import answer_messages

T0 = 1_700_000_000_000
TOPIC = KafkaSettings().model_responses_topic


def new_hub() -> FanoutHub:
    buffer = ReplayBuffer(max_events_per_session=1000, max_sessions=100, max_age_s=600)
    return FanoutHub(buffer, max_pending=100)


def record(item: StreamEvent) -> ConsumerRecord[bytes, bytes]:
    value = item.event.model_dump_json(by_alias=True).encode()
    return ConsumerRecord(
        TOPIC, item.partition, item.offset, item.timestamp or -1, 0, None, value, None, 0, 0, ()
    )


def answer(kafka: Positions, message_id: str, attempt: str = "a1") -> list[StreamEvent]:
    words = ["Once ", "more ", "with ", "feeling."]
    return [
        kafka.wrap(start(message_id, attempt)),
        *[kafka.wrap(delta(seq, w, message_id, attempt)) for seq, w in enumerate(words)],
        kafka.wrap(done("".join(words), message_id, attempt)),
    ]


def ids(items: list[StreamEvent]) -> list[str]:
    return [item.id for item in items]


class Reader:
    """Collects what one client is sent, from a task, while the test dispatches events."""

    def __init__(self, hub: FanoutHub, last_event_id: str, message_id: str | None) -> None:
        subscription = hub.subscribe(SESSION)
        self.sent: list[SseMessage] = []
        self._task = asyncio.create_task(self._read(subscription, last_event_id, message_id))

    async def _read(self, subscription: Any, last_event_id: str, message_id: str | None) -> None:
        stream = answer_messages(
            subscription, stream_policy(), message_id=message_id, last_event_id=last_event_id
        )
        async for message in stream:
            self.sent.append(message)

    async def finished(self) -> list[SseMessage]:
        await asyncio.wait_for(self._task, 3)
        return self.sent

    def names(self) -> list[str]:
        return [message.event for message in self.sent]


def test_a_reader_continues_at_its_mark_to_check_it_or_starts_afresh() -> None:
    assert continue_at(None, 0, 10) is None
    assert continue_at(Mark(6, T0), 0, 10) == 6  # read the marked record again: same log?
    assert continue_at(Mark(6, T0), 0, 7) == 6
    assert continue_at(Mark(6, T0), 0, 3) is None  # the log is shorter: it started over
    assert continue_at(Mark(6, T0), 8, 20) is None  # retention passed it
    assert continue_at(Mark(6), 0, 7) == 7  # no timestamp to check: continue after it
    assert continue_at(Mark(6), 0, 6) is None
    assert continue_at(Mark(-1), 0, 0) == 0  # nothing read yet, empty log


class Offsets:
    """The three offset queries `ResponseFanout` asks when it (re)starts a partition."""

    def __init__(self, begin: int, end: int) -> None:
        self.begin, self.end = begin, end

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, self.begin)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, self.end)

    async def offsets_for_times(self, times: dict[TopicPartition, int]) -> dict[Any, Any]:
        # Every record is younger than the replay age: all of the log is worth reading.
        return {tp: OffsetAndTimestamp(self.begin, T0) for tp in times}


async def test_after_an_outage_the_first_record_read_tells_whether_the_log_is_the_same() -> None:
    hub = new_hub()
    fanout = ResponseFanout(KafkaSettings(), hub, backfill_records=100)
    kafka = Positions(clock_ms=T0)
    before = answer(kafka, "m1")
    for item in before:
        assert fanout._handle(record(item), time.monotonic()) == 0
    tp = TopicPartition(TOPIC, 0)

    # The broker kept its log: continue at the mark, whose record is read again and skipped.
    starts = await fanout._answer_starts(Offsets(0, 12), [tp])  # type: ignore[arg-type]
    assert starts == {tp: before[-1].offset}
    assert fanout._handle(record(before[-1]), time.monotonic()) == DUPLICATE
    assert len(hub.snapshot(SESSION)) == len(before)

    # It lost its log and the new one already reaches the mark: another record is there.
    kafka.broker_restarted()
    after = answer(kafka, "m2")
    starts = await fanout._answer_starts(Offsets(0, 12), [tp])  # type: ignore[arg-type]
    assert fanout._handle(record(after[-1]), time.monotonic()) == LOG_RESTARTED
    assert len(hub.snapshot(SESSION)) == len(before)

    # It lost its log and the new one is shorter than the mark: start afresh at once.
    starts = await fanout._answer_starts(Offsets(0, 2), [tp])  # type: ignore[arg-type]
    assert starts == {tp: 0}
    assert [fanout._handle(record(item), time.monotonic()) for item in after] == [0] * len(after)
    assert ids(hub.snapshot(SESSION)) == ids(before + after)


async def test_a_record_below_the_mark_while_reading_is_a_restarted_log() -> None:
    hub = new_hub()
    fanout = ResponseFanout(KafkaSettings(), hub)
    kafka = Positions(clock_ms=T0)
    for item in answer(kafka, "m1"):
        fanout._handle(record(item), time.monotonic())
    kafka.broker_restarted()

    assert fanout._handle(record(kafka.wrap(start("m2"))), time.monotonic()) == LOG_RESTARTED


async def test_an_id_ahead_of_this_replica_resumes_exactly_when_its_event_arrives() -> None:
    hub = new_hub()
    events = answer(Positions(clock_ms=T0), "m1")
    for item in events[:2]:
        hub.dispatch(item)  # this replica has read start and the first token

    reader = Reader(hub, events[3].id, "m1")  # the client saw three tokens elsewhere
    await asyncio.sleep(0.05)
    for item in events[2:]:
        hub.dispatch(item)
    sent = await reader.finished()

    assert reader.names() == ["token", "done"]
    assert sent[0].data["delta"] == "feeling."


async def test_another_event_at_the_awaited_position_resets_and_sends_the_whole_answer() -> None:
    hub = new_hub()
    kafka = Positions(clock_ms=T0)
    old = answer(kafka, "m1", "a1")  # the client saw these up to old[3] on another replica
    kafka.broker_restarted(down_ms=300)
    new = answer(kafka, "m1", "a2")  # the message answered again, in the new log
    for item in new[:2]:
        hub.dispatch(item)  # this replica reads only the new log

    reader = Reader(hub, old[3].id, "m1")
    await asyncio.sleep(0.05)
    for item in new[2:]:
        hub.dispatch(item)
    sent = await reader.finished()

    assert reader.names() == ["reset", "start", *["token"] * 4, "done"]
    assert sent[1].data["attempt"] == "a2"
    text = "".join(m.data["delta"] for m in sent if m.event == "token")
    assert text == sent[-1].data["text"]


async def test_an_awaited_event_that_never_comes_resets_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streaming, "AHEAD_WAIT_S", 0.2)
    hub = new_hub()
    kafka = Positions(clock_ms=T0)
    kafka.offset = 10
    old = kafka.wrap(delta(3, "x", "m1"))  # the client's id: from a longer, lost log
    kafka.broker_restarted(down_ms=300)
    for item in answer(kafka, "m1", "a2"):
        hub.dispatch(item)  # the whole answer is here, below the id's offset

    reader = Reader(hub, old.id, "m1")
    sent = await reader.finished()

    assert reader.names() == ["reset", "start", *["token"] * 4, "done"]
    assert "".join(m.data["delta"] for m in sent if m.event == "token") == sent[-1].data["text"]


@pytest.mark.parametrize("how", ["header", "query"])
async def test_the_api_takes_ids_with_a_timestamp_in_the_header_and_the_query(how: str) -> None:
    hub = new_hub()
    kafka = Positions(clock_ms=T0)
    old = answer(kafka, "m1")
    kafka.broker_restarted()
    new = answer(kafka, "m2")
    for item in old:
        hub.dispatch(item)
    hub.reading_from(0, 0)  # the fan-out noticed the new log
    for item in new:
        hub.dispatch(item)
    readiness = Readiness(producer_up=lambda: True, fanout_ready=lambda: True, broker_probe=_up)
    app = create_app(GatewaySettings(), publisher=FakePublisher(), hub=hub, readiness=readiness)
    params = {"session_id": SESSION, "message_id": "m2"}
    headers = {}
    if how == "header":
        headers["Last-Event-ID"] = new[2].id
    else:
        params["last_event_id"] = new[2].id
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/stream", params=params, headers=headers)

    assert response.status_code == 200
    events = parse_sse(response.text)
    assert [(e.event, e.id) for e in events] == [
        ("token", new[3].id),
        ("token", new[4].id),
        ("done", new[5].id),
    ]
    assert new[5].id == f"0-5-{new[5].timestamp}"


async def _up() -> bool:
    return True
