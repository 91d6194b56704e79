"""Cancels reach a running answer, a waiting one, or one not fetched yet."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from tidings.responder.cancels import CancelRegistry
from tidings.responder.partition import PartitionWorker, Record

TP = TopicPartition("user_messages", 0)


ALICE = ("s-alice", "alice")


def test_a_running_answer_gets_its_event_set() -> None:
    cancels = CancelRegistry()
    event = cancels.begin("m1", ALICE)
    assert cancels.cancel("m1", ALICE) is True
    assert event.is_set()
    cancels.end("m1")
    assert not cancels.is_active("m1")


def test_a_cancel_from_another_session_or_user_changes_nothing() -> None:
    cancels = CancelRegistry()
    event = cancels.begin("m1", ALICE)
    assert cancels.cancel("m1", ("s-mallory", "mallory")) is False
    assert cancels.cancel("m1", ("s-alice", "mallory")) is False
    assert cancels.cancel("m1", ("s-alice", None)) is False
    assert not event.is_set()
    cancels.end("m1")
    cancels.cancel("m2", ("s-mallory", "mallory"))  # early, for someone else's message
    assert not cancels.begin("m2", ALICE).is_set()


def test_a_cancel_before_the_message_is_remembered_and_bounded() -> None:
    cancels = CancelRegistry(remember=2)
    assert cancels.cancel("early", ALICE) is False
    assert cancels.begin("early", ALICE).is_set()
    assert not cancels.begin("other", ALICE).is_set()
    for name in ("a", "b", "c"):
        cancels.cancel(name, ALICE)
    assert not cancels.begin("a", ALICE).is_set()  # forgotten: the oldest of more than 2
    assert cancels.begin("c", ALICE).is_set()


def record(offset: int, key: str, value: bytes = b"{}") -> Record:
    return ConsumerRecord(
        topic=TP.topic,
        partition=TP.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key.encode(),
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=[],
    )


async def test_a_waiting_message_is_started_out_of_turn_and_commits_stay_safe() -> None:
    release = asyncio.Event()
    started: list[int] = []

    async def handler(rec: Record) -> None:
        started.append(rec.offset)
        if rec.offset == 0:
            await release.wait()

    worker = PartitionWorker(TP, handler, max_in_flight=None)
    worker.add([record(0, "s"), record(1, "s", b'{"message_id":"wanted"}')])
    worker.add_finished(record(2, "s"))  # the cancel request itself
    await asyncio.sleep(0)
    assert started == [0]
    assert worker.expedite(lambda r: b"wanted" in (r.value or b""))
    await asyncio.sleep(0)
    assert started == [0, 1]
    # Offsets 1 and 2 are done, but 0 is still running: nothing may be committed yet.
    assert worker.tracker.to_commit() is None
    release.set()
    await worker.wait_idle()
    assert worker.tracker.to_commit() == 3
    assert not worker.expedite(lambda r: True)
