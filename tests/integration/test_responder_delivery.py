"""Delivery guarantees on the real broker: cancel, two replicas, SIGTERM, kill -9.

The SIGTERM and kill -9 tests run real responder processes (`python -m tidings.cli.main
responder`, configured by environment variables only) with the `echo` backend pacing its
tokens, so an answer is reliably in flight when the signal arrives.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from test_responder_support import (
    cancel,
    committed_offsets,
    positions_after,
    responder_process,
    responses,
    send,
)

from tidings.common.events import ResponseDelta, ResponseDone, ResponseError, ResponseStart
from tidings.common.kafka import kafka_producer
from tidings.common.memory_api import MemoryApiSettings
from tidings.common.settings import KafkaSettings, LLMSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings
from tidings.responder.llm import BackendSettings
from tidings.responder.service import ResponderService
from tidings.responder.settings import ResponderSettings

pytestmark = pytest.mark.integration


def echo_settings(kafka: KafkaSettings, *, tokens: int, per_s: float) -> ResponderSettings:
    return ResponderSettings(
        host="127.0.0.1",
        port=0,
        group_id=f"{kafka.topic_prefix}responder",
        kafka=kafka,
        llm=LLMSettings(llm_backend="echo", llm_max_tokens=256),
        backends=BackendSettings(echo_tokens=tokens, echo_tokens_per_s=per_s),
        memory=MemoryApiSettings(url=""),
        flush_ms=20,
    )


async def test_cancel_stops_a_running_and_a_queued_answer(
    kafka_settings: KafkaSettings,
) -> None:
    kafka = kafka_settings
    settings = echo_settings(kafka, tokens=40, per_s=8)  # ~5 s per answer
    async with (
        responses(kafka) as reader,
        kafka_producer(kafka, name="test") as producer,
        ResponderService(settings),
    ):
        first = await send(producer, kafka, "s-cancel", "Tell me a long story")
        queued = await send(producer, kafka, "s-cancel", "And another one")  # waits for `first`
        other = await send(producer, kafka, "s-other", "Tell me a long story too")
        await reader.until_first_delta(first)
        await reader.until_first_delta(other)

        asked = time.monotonic()
        cancels = [await cancel(producer, kafka, queued.message.message_id, "s-cancel")]
        cancels.append(await cancel(producer, kafka, other.message.message_id, "s-other"))
        cancels.append(await cancel(producer, kafka, "no-such-message", "s-other"))
        await reader.until_terminal(queued, other, timeout_s=5)
        latency = max(reader.ended_at[s.message.message_id] for s in (queued, other)) - asked
        # Uncancelled, `other` would run ~5 s more and `queued` would not even have begun: a
        # 3 s bound proves the cancel ended them. The 1 s target is measured by `make bench`
        # (responder, "Cancel"), not here: a loaded CI machine once took 1.09 s.
        assert latency < 3.0, f"cancelled answers ended {latency:.2f}s after the cancel"
        assert reader.terminal(first.message.message_id) is None  # still answering
        await reader.until_terminal(first, timeout_s=30)

    for sent in (queued, other):
        events = reader.of(sent)
        terminal = events[-1]
        assert isinstance(terminal, ResponseError), events
        assert (terminal.reason, terminal.code) == ("cancelled", "cancelled")
        assert sum(isinstance(e, ResponseDone | ResponseError) for e in events) == 1
    assert not any(isinstance(e, ResponseDelta) for e in reader.of(queued))
    assert any(isinstance(e, ResponseDelta) for e in reader.of(other))
    done = reader.terminal(first.message.message_id)
    assert isinstance(done, ResponseDone) and done.source == "llm"
    every = [(s.partition, s.offset) for s in (first, queued, other)] + cancels
    assert await committed_offsets(kafka, settings.group_id) == positions_after(every)


async def test_two_responders_answer_each_message_exactly_once(
    kafka_settings: KafkaSettings,
) -> None:
    kafka = kafka_settings
    settings = echo_settings(kafka, tokens=6, per_s=0)
    async with (
        responses(kafka) as reader,
        kafka_producer(kafka, name="test") as producer,
        ResponderService(settings) as first,
        ResponderService(settings) as second,
    ):
        for _ in range(600):
            if first.assigned_partitions and second.assigned_partitions:
                break
            await asyncio.sleep(0.1)
        shares = [first.assigned_partitions, second.assigned_partitions]
        assert sorted(shares[0] + shares[1]) == [0, 1, 2], shares
        sent = [
            await send(producer, kafka, f"session-{i % 10}", f"Question number {i}")
            for i in range(40)
        ]
        await reader.until_terminal(*sent, timeout_s=60)
        quiet_until = time.monotonic() + 1.5  # keep reading: a duplicate would arrive now
        await reader.wait_for(lambda: time.monotonic() > quiet_until)
    for one in sent:
        events = reader.of(one)
        assert sum(isinstance(e, ResponseStart) for e in events) == 1, events
        assert sum(isinstance(e, ResponseDone) for e in events) == 1, events
        assert len({e.attempt for e in events}) == 1
        done = reader.terminal(one.message.message_id)
        assert isinstance(done, ResponseDone) and done.text.startswith("You said: Question number")
    every = [(s.partition, s.offset) for s in sent]
    assert await committed_offsets(kafka, settings.group_id) == positions_after(every)


async def test_sigterm_finishes_the_answer_in_flight_commits_and_leaves(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    kafka = kafka_settings
    async with (
        responses(kafka) as reader,
        kafka_producer(kafka, name="test") as producer,
        responder_process(
            kafka,
            tmp_path / "responder.log",
            ECHO_TOKENS="12",
            ECHO_TOKENS_PER_S="6",  # ~2 s per answer
            RESPONDER_GRACE_S="20",
        ) as process,
    ):
        await process.until_logged("partitions assigned")
        story = await send(producer, kafka, "s-term", "Tell me a story")
        await reader.until_first_delta(story)
        assert process.proc is not None
        process.proc.send_signal(signal.SIGTERM)
        await process.until_logged("shutting down")
        # Fetching has stopped: this one is left for the next responder.
        later = await send(producer, kafka, "s-term", "And a second one")
        code = await asyncio.wait_for(process.proc.wait(), 30)
        assert code == 0, process.tail()
        await reader.until_terminal(story, timeout_s=10)
        done = reader.terminal(story.message.message_id)
        assert isinstance(done, ResponseDone), reader.of(story)
        assert done.text == "You said: Tell me a story Tell me a story Tell me"
        assert reader.of(later) == []
        assert await committed_offsets(kafka, f"{kafka.topic_prefix}responder") == {
            story.partition: story.offset + 1
        }
        events = [line.get("event") for line in process.log_lines()]
        assert "left consumer group" in events or "responder stopped" in events

        # The unanswered message is delivered to the next responder.
        async with ResponderService(echo_settings(kafka, tokens=4, per_s=0)):
            await reader.until_terminal(later, timeout_s=60)
        assert isinstance(reader.terminal(later.message.message_id), ResponseDone)


async def read_sse(
    client: httpx.AsyncClient, url: str, into: list[tuple[str, dict[str, Any]]]
) -> None:
    async with aconnect_sse(client, "GET", url) as source:
        async for sse in source.aiter_sse():
            if sse.data:
                into.append((sse.event, json.loads(sse.data)))


async def test_kill_9_mid_answer_gives_the_client_a_reset_and_one_complete_answer(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    kafka = kafka_settings
    slow = {"ECHO_TOKENS": "24", "ECHO_TOKENS_PER_S": "6"}  # ~4 s per answer
    gateway_settings = GatewaySettings(
        host="127.0.0.1", port=0, kafka=kafka, memory=MemoryApiSettings(url="")
    )
    async with (
        GatewayService(gateway_settings) as gateway,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}", timeout=90) as client,
        responder_process(kafka, tmp_path / "first.log", **slow) as first,
    ):
        await first.until_logged("partitions assigned")
        accepted = await client.post("/chat", json={"message": "Tell me about the kraken"})
        assert accepted.status_code == 202, accepted.text
        events: list[tuple[str, dict[str, Any]]] = []
        reading = asyncio.create_task(read_sse(client, accepted.json()["stream_url"], events))
        for _ in range(300):
            if any(name == "token" for name, _ in events):
                break
            await asyncio.sleep(0.05)
        assert any(name == "token" for name, _ in events), first.tail()
        assert first.proc is not None
        first.proc.kill()  # SIGKILL: no shutdown, no commit, no LeaveGroup
        await first.proc.wait()
        async with responder_process(kafka, tmp_path / "second.log", **slow) as second:
            try:
                await asyncio.wait_for(reading, 90)
            except TimeoutError:
                raise AssertionError(f"no complete answer: {events}\n{second.tail()}") from None

    names = [name for name, _ in events]
    assert "reset" in names, names
    reset_at = names.index("reset")
    assert names.index("token") < reset_at
    assert names.count("done") == 1 and names[-1] == "done", names
    done = events[-1][1]
    expected = "You said: Tell me about the kraken Tell me about the kraken"
    assert done["text"].startswith(expected)
    after_reset = "".join(data["delta"] for name, data in events[reset_at:] if name == "token")
    assert after_reset == done["text"]
    assert done["message_id"] == accepted.json()["message_id"]
