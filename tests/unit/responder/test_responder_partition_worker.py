"""One partition's messages are answered in order; shutdown abandons, never half-commits."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from tidings.responder import partition
from tidings.responder.partition import PartitionWorker, Record

TP = TopicPartition("user_messages", 0)


def record(offset: int, key: str) -> Record:
    return ConsumerRecord(
        topic=TP.topic,
        partition=TP.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key.encode(),
        value=b"{}",
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=2,
        headers=[],
    )


class Recorder:
    """A handler whose answers take as long as the test says."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.finished: list[int] = []
        self.running = 0
        self.most_running = 0
        self.gates: dict[int, asyncio.Event] = {}

    def gate(self, offset: int) -> asyncio.Event:
        return self.gates.setdefault(offset, asyncio.Event())

    async def __call__(self, rec: Record) -> None:
        self.started.append(rec.offset)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate(rec.offset).wait()
        finally:
            self.running -= 1
        self.finished.append(rec.offset)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_one_partition_is_answered_strictly_in_order() -> None:
    handler = Recorder()
    worker = PartitionWorker(TP, handler, max_in_flight=1)
    worker.add([record(0, "a"), record(1, "b"), record(2, "c")])
    await settle()
    assert handler.started == [0]
    for offset in (2, 1, 0):
        handler.gate(offset).set()
    await worker.wait_idle()
    assert handler.finished == [0, 1, 2]
    assert handler.most_running == 1
    assert worker.tracker.to_commit() == 3


async def test_sessions_of_one_partition_may_overlap_but_each_stays_in_order() -> None:
    handler = Recorder()
    worker = PartitionWorker(TP, handler, max_in_flight=3)
    worker.add([record(0, "s1"), record(1, "s1"), record(2, "s2"), record(3, "s3")])
    await settle()
    assert handler.started == [0, 2, 3]  # s1's second message waits for its first
    handler.gate(2).set()
    handler.gate(3).set()
    await settle()
    assert worker.tracker.to_commit() is None  # offset 0 still running: nothing committable
    handler.gate(0).set()
    await settle()
    assert handler.started == [0, 2, 3, 1]
    assert worker.tracker.to_commit() == 1
    handler.gate(1).set()
    await worker.wait_idle()
    assert worker.tracker.to_commit() == 4


async def test_stop_lets_answers_finish_within_the_grace_period() -> None:
    handler = Recorder()
    worker = PartitionWorker(TP, handler, max_in_flight=1)
    worker.add([record(0, "a"), record(1, "a")])
    await settle()
    stopping = asyncio.create_task(worker.stop(grace_s=5))
    await settle()
    handler.gate(0).set()
    await stopping
    assert handler.finished == [0]
    assert handler.started == [0]  # the waiting message was dropped, to be redelivered
    assert worker.tracker.to_commit() == 1


async def test_answers_running_past_the_grace_period_are_abandoned_uncommitted() -> None:
    handler = Recorder()
    worker = PartitionWorker(TP, handler, max_in_flight=2)
    worker.add([record(0, "a"), record(1, "b")])
    await settle()
    handler.gate(1).set()
    await settle()
    await worker.stop(grace_s=0.05)
    assert handler.finished == [1]
    assert worker.tracker.to_commit() is None  # offset 0 was abandoned; 1 waits behind it
    assert worker.backlog == 0


async def test_an_answer_ignoring_its_cancellation_does_not_hold_up_the_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(partition, "STOP_TIMEOUT_S", 0.5)
    release = asyncio.Event()
    cancels = 0

    async def stubborn(rec: Record) -> None:
        nonlocal cancels
        while True:
            try:
                await release.wait()
                return
            except asyncio.CancelledError:
                cancels += 1  # swallowed: the answer goes on waiting

    worker = PartitionWorker(TP, stubborn, max_in_flight=1)
    worker.add([record(0, "a")])
    await settle()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await worker.stop(grace_s=0.05)
    assert loop.time() - started < 2.0  # was: waited for the answer forever
    assert cancels >= 1
    assert worker.tracker.to_commit() is None
    release.set()  # lets the abandoned answer end, so the test leaves nothing behind
    await settle()


async def test_a_crashing_answer_stops_the_partition_and_is_reported() -> None:
    crashes: list[BaseException] = []

    async def broken(rec: Record) -> None:
        raise RuntimeError(f"broker gone at {rec.offset}")

    worker = PartitionWorker(TP, broken, max_in_flight=1, on_crash=crashes.append)
    worker.add([record(0, "a"), record(1, "a")])
    await worker.wait_idle()
    assert [str(error) for error in crashes] == ["broker gone at 0"]
    assert worker.tracker.to_commit() is None
    assert worker.closed


async def test_each_finished_answer_asks_for_a_commit_at_once_but_abandoned_ones_do_not() -> None:
    handler = Recorder()
    finished: list[int | None] = []
    worker = PartitionWorker(
        TP,
        handler,
        max_in_flight=None,
        on_finish=lambda: finished.append(worker.tracker.position),
    )
    worker.add([record(0, "a"), record(1, "b"), record(2, "c")])
    await settle()
    handler.gate(1).set()
    await settle()
    # Offset 1 finished first: a commit is asked for, though nothing is committable yet.
    assert finished == [None]
    handler.gate(0).set()
    await settle()
    assert finished == [None, 2]
    await worker.stop(0.01)  # offset 2 is abandoned: no commit is asked for it
    assert finished == [None, 2]
    assert worker.tracker.position == 2
