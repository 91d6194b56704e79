"""A rebalance does not wait for answers in flight (tidings.responder.consumer).

Two responder processes answer long (echo) answers on every partition; one is killed with
SIGKILL. The survivor takes the dead one's partitions while its own answers go on: they are
neither cut off nor restarted, and the dead one's answers begin again on the survivor before
the survivor's own have ended. (Before, the survivor finished its answers - or cut them off
after RESPONDER_REVOKE_GRACE_S - before it rejoined, so a takeover waited for them.)
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from test_responder_support import responder_process

from tidings.common.events import (
    ResponseDone,
    ResponseStart,
    UserMessage,
    new_id,
    parse_response_event,
)
from tidings.common.kafka import ensure_topics, kafka_consumer, kafka_producer
from tidings.common.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# 60 tokens at 4 per second: 15 s answers, longer than a takeover (6 s session + rejoin).
SLOW = {"ECHO_TOKENS": "60", "ECHO_TOKENS_PER_S": "4", "ECHO_FIRST_TOKEN_MS": "50"}


async def test_the_survivor_takes_over_without_waiting_for_its_own_answers(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    kafka = kafka_settings
    await ensure_topics(kafka)
    order: list[tuple[str, str, str]] = []  # (kind, message id, attempt) as read

    async with (
        kafka_consumer(kafka, kafka.model_responses_topic, group_id=None, name="reader") as reader,
        responder_process(kafka, tmp_path / "a.log", **SLOW) as first,
        responder_process(kafka, tmp_path / "b.log", **SLOW) as second,
    ):

        async def read_until(done: object, timeout_s: float = 120) -> None:
            async with asyncio.timeout(timeout_s):
                while not done():  # type: ignore[operator]
                    for records in (await reader.getmany(timeout_ms=100)).values():
                        for record in records:
                            event = parse_response_event(record.value or b"")
                            kind = type(event).__name__
                            order.append((kind, event.message_id, event.attempt))

        for process in (first, second):
            await process.until_logged("partitions assigned")
        # Both members in the group: each holds part of the partitions.
        await asyncio.sleep(8)
        sent = [
            UserMessage(message_id=new_id(), session_id=new_id(), text="Tell me a long story.")
            for _ in range(kafka.topic_partitions)
        ]
        async with kafka_producer(kafka, name="test") as producer:
            for partition, message in enumerate(sent):
                await producer.send_and_wait(
                    kafka.user_messages_topic,
                    message.to_bytes(),
                    key=message.session_id.encode(),
                    partition=partition,
                )
        ids = {m.message_id for m in sent}

        def started() -> set[str]:
            return {m for kind, m, _ in order if kind == ResponseStart.__name__ and m in ids}

        await read_until(lambda: started() == ids)
        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)
        await first.proc.wait()

        def ended() -> set[str]:
            return {m for kind, m, _ in order if kind == ResponseDone.__name__ and m in ids}

        await read_until(lambda: ended() == ids)

    attempts = {
        m: {a for kind, mid, a in order if mid == m and kind == "ResponseStart"} for m in ids
    }
    restarted = {m for m, seen in attempts.items() if len(seen) == 2}
    kept = {m for m, seen in attempts.items() if len(seen) == 1}
    assert restarted and kept and restarted | kept == ids, attempts
    # Every message ended exactly once.
    assert sorted(m for kind, m, _ in order if kind == "ResponseDone") == sorted(ids)
    # The dead member's answers began again before any of the survivor's own had ended.
    second_starts = [
        i for i, (kind, m, _) in enumerate(order) if kind == "ResponseStart" and m in restarted
    ][len(restarted) :]
    first_kept_done = min(
        i for i, (kind, m, _) in enumerate(order) if kind == "ResponseDone" and m in kept
    )
    assert max(second_starts) < first_kept_done, order
