"""A memory-mode broker restart: offsets start again at 0, resumed streams still show each
answer exactly once.

A Tansu broker of this test's own (memory storage) is restarted on the same port between two
answers of one session, so the answer after the restart sits at the same offsets as the ones
before it. Two gateways run across the restart and a third starts after it; streams are cut
and resumed on every one of them with ids from before and after the restart.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_gateway import answer_events, publish_answer, read_sse, wait_until
from test_gateway_resume import read_until_tokens

from tidings.cli.infra import InfraError, free_port, tansu_command, wait_for_port
from tidings.common.events import ResponseDone
from tidings.common.kafka import kafka_producer
from tidings.common.settings import KafkaSettings
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SESSION = "incarnation-session"
SseEvent = tuple[str, dict[str, Any], str]


class Broker:
    """Tansu with memory storage on a fixed port, restartable (it forgets everything)."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self._log = log_path.open("ab")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            tansu_command(self.port), stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_for_port(self.port, timeout_s=15)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def close(self) -> None:
        self.stop()
        self._log.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    try:
        port = free_port()
        tansu_command(port)
    except InfraError as exc:
        pytest.skip(f"needs the Tansu broker binary: {exc}")
    own = Broker(port, tmp_path / "tansu.log")
    own.start()
    try:
        yield own
    finally:
        own.close()


@dataclass
class Screen:
    """What a chat UI shows for one message, fed with the SSE events it receives."""

    shown: str = ""
    events: list[SseEvent] = field(default_factory=list)
    shown_at_done: str | None = None

    def apply(self, events: list[SseEvent]) -> None:
        for name, data, _ in events:
            self.events.append((name, data, _))
            if name == "token":
                self.shown += data["delta"]
            elif name == "reset":
                self.shown = ""
            elif name == "done":
                self.shown_at_done = self.shown
                self.shown = data["text"]

    @property
    def last_id(self) -> str:
        return [event_id for _, _, event_id in self.events if event_id][-1]


class Replica:
    def __init__(self, name: str, service: GatewayService) -> None:
        self.name = name
        self.service = service
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10)

    def has_done(self, message_id: str) -> bool:
        return any(
            item.event.message_id == message_id and isinstance(item.event, ResponseDone)
            for item in self.service.hub.snapshot(SESSION)
        )

    def stream(self, message_id: str, last_id: str | None = None) -> Any:
        params = {"session_id": SESSION, "message_id": message_id}
        headers = {"Last-Event-ID": last_id} if last_id else {}
        return self.client.stream("GET", "/stream", params=params, headers=headers)


async def watched_outage(replicas: list[Replica], broker: Broker) -> None:
    """Restart the broker and wait until every replica noticed and recovered."""
    broker.stop()
    await wait_until(lambda: not any(r.service.watch and r.service.watch.up for r in replicas), 10)
    await asyncio.to_thread(broker.start)
    await wait_until(lambda: all(r.service.watch and r.service.watch.up for r in replicas), 20)


CHUNKS = {
    "m0-before": ["Zero ", "was ", "the ", "first ", "answer."],
    "m1-before": ["One ", "came ", "right ", "before ", "restart."],
    "m2-after": ["Two ", "came ", "after ", "the ", "restart."],
}


async def test_resumes_across_a_broker_that_lost_its_log_show_each_answer_once(
    broker: Broker,
) -> None:
    kafka = KafkaSettings(
        broker="tansu",  # a Tansu of the test's own (broker_compat on)
        bootstrap_servers=broker.bootstrap,
        topic_prefix="inc-",
        topic_partitions=1,
        request_timeout_ms=1000,
    )
    settings = GatewaySettings(
        host="127.0.0.1",
        port=0,
        kafka=kafka,
        memory={"url": ""},
        broker_check_s=0.2,
        answer_start_timeout_s=3.0,
    )
    events = {m: answer_events(SESSION, m, chunks) for m, chunks in CHUNKS.items()}
    async with AsyncExitStack() as stack:
        a = Replica("a", await stack.enter_async_context(GatewayService(settings)))
        b = Replica("b", await stack.enter_async_context(GatewayService(settings)))
        for replica in (a, b):
            stack.push_async_callback(replica.client.aclose)

        # Before the restart: two answers of the session at offsets 0-6 and 7-13; the client
        # sees the second one on A up to its second token.
        async with kafka_producer(kafka, name="test-responder") as producer:
            await publish_answer(producer, kafka, events["m0-before"], SESSION)
            await publish_answer(producer, kafka, events["m1-before"], SESSION)
        await wait_until(lambda: a.has_done("m1-before") and b.has_done("m1-before"))
        before = Screen()
        async with a.stream("m1-before") as response:
            before.apply(await asyncio.wait_for(read_until_tokens(response, 2), 10))
        pre_restart_id = before.last_id

        await watched_outage([a, b], broker)
        c = Replica("c", await stack.enter_async_context(GatewayService(settings)))
        stack.push_async_callback(c.client.aclose)

        # After the restart: a third answer of the same session, at offsets 0-6 again; the
        # client sees it on A up to its second token, then the rest is written.
        after = Screen()
        async with kafka_producer(kafka, name="test-responder") as producer:
            await publish_answer(producer, kafka, events["m2-after"][:3], SESSION)
            async with a.stream("m2-after") as response:
                after.apply(await asyncio.wait_for(read_until_tokens(response, 2), 10))
            await publish_answer(producer, kafka, events["m2-after"][3:], SESSION)
        post_restart_id = after.last_id
        await wait_until(lambda: all(r.has_done("m2-after") for r in (a, b, c)))

        async def resume(replica: Replica, message_id: str, screen: Screen, last_id: str) -> Screen:
            resumed = Screen(screen.shown, list(screen.events))
            async with replica.stream(message_id, last_id) as response:
                resumed.apply(await asyncio.wait_for(read_sse(response), 15))
            return resumed

        # An id from after the restart: exactly the rest of the new answer, on every replica
        # (A and B also hold the answer before it at the same offsets).
        for replica in (a, b, c):
            resumed = await resume(replica, "m2-after", after, post_restart_id)
            names = [name for name, _, _ in resumed.events[len(after.events) :]]
            assert names == ["token", "token", "token", "done"], (replica.name, names)
            assert resumed.shown_at_done == "".join(CHUNKS["m2-after"]), replica.name

        # An id from before the restart: A and B still hold that answer and continue it.
        for replica in (a, b):
            resumed = await resume(replica, "m1-before", before, pre_restart_id)
            names = [name for name, _, _ in resumed.events[len(before.events) :]]
            assert names == ["token", "token", "token", "done"], (replica.name, names)
            assert resumed.shown_at_done == "".join(CHUNKS["m1-before"]), replica.name

        # C started after the restart and never read that answer (the broker lost it, and
        # there is no history here): the client is told to drop its partial text, and the
        # stream ends with a timeout instead of waiting for a position of another log.
        resumed = await resume(c, "m1-before", before, pre_restart_id)
        names = [name for name, _, _ in resumed.events[len(before.events) :]]
        assert names == ["reset", "error"], names
        assert resumed.events[-1][1]["reason"] == "timeout"
        assert resumed.shown == ""

        # A position-only id (older gateways) names two events of this session on B: it
        # cannot be placed, so the answer is sent again in full after a `reset`.
        legacy_id = post_restart_id.rsplit("-", 1)[0]
        resumed = await resume(b, "m2-after", after, legacy_id)
        names = [name for name, _, _ in resumed.events[len(after.events) :]]
        assert names == ["reset", "start", *["token"] * 5, "done"], names
        assert resumed.shown_at_done == "".join(CHUNKS["m2-after"])
