"""The gateway's fan-out is paced: the busy wait while a client waits for answers on the
replica, the idle wait while it reads back a backlog (against the real broker)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest

from tidings.common.events import ResponseDelta
from tidings.common.kafka import ensure_topics, kafka_producer
from tidings.common.pacing import FetchPacer
from tidings.common.settings import KafkaSettings
from tidings.gateway.fanout import BACKLOG_RECORDS, ResponseFanout
from tidings.gateway.hub import FanoutHub
from tidings.gateway.replay import ReplayBuffer

pytestmark = pytest.mark.integration

IDLE_MS, BUSY_MS = 300, 5


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_fan_out_reads_a_backlog_at_the_idle_wait_then_paces_for_its_clients(
    kafka_settings: KafkaSettings,
) -> None:
    await ensure_topics(kafka_settings)
    topic = kafka_settings.model_responses_topic
    session = uuid.uuid4().hex
    backlog = 3 * BACKLOG_RECORDS

    async def answer_events(count: int, first_seq: int) -> int:
        async with kafka_producer(kafka_settings, name="pacing-test") as producer:
            sent = [
                await producer.send(
                    topic,
                    ResponseDelta(
                        session_id=session, message_id="m" * 32, attempt="a", seq=seq, text="x "
                    ).to_bytes(),
                    partition=0,
                )
                for seq in range(first_seq, first_seq + count)
            ]
            return (await asyncio.gather(*sent))[-1].offset

    await answer_events(backlog, 0)
    pacer = FetchPacer(name="fanout-test", idle_ms=IDLE_MS, busy_ms=BUSY_MS, hold_s=60.0)
    buffer = ReplayBuffer(max_events_per_session=10_000, max_sessions=10, max_age_s=600)
    hub = FanoutHub(buffer, max_pending=10_000, on_activity=pacer.touch)
    subscription = hub.subscribe(session)  # a client waits for answers on this replica
    fanout = ResponseFanout(kafka_settings, hub, backfill_records=10_000, pacer=pacer)
    async with fanout:
        # It starts 3 x BACKLOG_RECORDS behind: the idle wait, although a client waits.
        assert pacer.wait_ms == IDLE_MS
        consumer = fanout._consumer
        assert consumer is not None
        waits: list[int] = []
        client_send = consumer._client.send

        async def spy(node_id: int, request: object, **kwargs: object) -> object:
            if type(request).__name__ == "FetchRequest":
                waits.append(request._max_wait_ms)  # type: ignore[attr-defined]
            return await client_send(node_id, request, **kwargs)

        consumer._client.send = spy  # type: ignore[method-assign]
        last = await answer_events(5, backlog)  # live answers after the backlog

        def read_to(offset: int) -> bool:
            mark = hub.mark(0)
            return mark is not None and mark.offset >= offset

        await _until(lambda: read_to(last), 10)
        # Caught up, with a client waiting: the busy wait.
        await _until(lambda: pacer.wait_ms == BUSY_MS, 5)
        waits.clear()
        await asyncio.sleep(0.5)
        assert waits, "no fetch requests seen"
        assert set(waits) == {BUSY_MS}
    subscription.close()
