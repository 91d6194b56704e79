"""The responder reads a partition again from its start only when the broker's log really
ends below its position, not when a fetch's highwater lags the records it carried."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from tidings.responder.consumer import ResponderConsumer
from tidings.responder.partition import Record

TP = TopicPartition("user_messages", 0)


class FakeConsumer:
    """What the fetch loop asks of aiokafka about one partition."""

    def __init__(self) -> None:
        self.high = 0
        self.position_ = 0
        self.polled_ms = 0
        self.rewound: list[TopicPartition] = []

    def highwater(self, tp: TopicPartition) -> int:
        return self.high

    async def position(self, tp: TopicPartition) -> int:
        return self.position_

    def last_poll_timestamp(self, tp: TopicPartition) -> int:
        return self.polled_ms

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.rewound.append(tp)

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def fetched(
        self, *, offsets: range, highwater: int, at_ms: int
    ) -> dict[TopicPartition, list[Record]]:
        """A fetch answered at `at_ms` with the records at `offsets` and `highwater`."""
        self.high, self.polled_ms, self.position_ = highwater, at_ms, offsets.stop
        return {TP: [_record(offset) for offset in offsets]}

    def answered_empty(self, *, highwater: int, at_ms: int) -> None:
        self.high, self.polled_ms = highwater, at_ms


def _record(offset: int) -> Record:
    return ConsumerRecord(TP.topic, TP.partition, offset, 0, 0, b"k", b"{}", None, 1, 2, [])


async def _handler(record: Record) -> None:
    await asyncio.sleep(0)


def _responder(consumer: FakeConsumer) -> ResponderConsumer:
    responder = ResponderConsumer(
        consumer,  # type: ignore[arg-type]
        TP.topic,
        _handler,
        max_in_flight=None,
        max_backlog=64,
        revoke_grace_s=0.0,
        on_crash=lambda error: None,
    )
    responder.assign([TP])
    return responder


async def test_records_past_their_fetch_highwater_are_no_lost_log() -> None:
    # Seen on Apache Kafka under load: the response carried offset 320, said highwater 320.
    consumer = FakeConsumer()
    responder = _responder(consumer)
    worker = responder._workers[TP]
    responder._take(consumer.fetched(offsets=range(318, 321), highwater=320, at_ms=1000))
    await responder._measure_lag()
    assert consumer.rewound == []
    assert responder._workers[TP] is worker
    # The next fetch at the position says where the log ends: nothing lost.
    consumer.answered_empty(highwater=321, at_ms=1001)
    await responder._measure_lag()
    assert consumer.rewound == []
    await worker.stop(1.0)


async def test_a_log_that_ends_below_the_position_is_read_again_from_its_start() -> None:
    # A memory-mode broker restarted: a fetch at our position finds a shorter log.
    consumer = FakeConsumer()
    responder = _responder(consumer)
    worker = responder._workers[TP]
    responder._take(consumer.fetched(offsets=range(3, 5), highwater=5, at_ms=1000))
    consumer.answered_empty(highwater=2, at_ms=1500)
    await responder._measure_lag()
    assert consumer.rewound == [TP]
    assert responder._workers[TP] is not worker
    await asyncio.gather(*responder._retired)
    await responder._workers[TP].stop(0.0)
