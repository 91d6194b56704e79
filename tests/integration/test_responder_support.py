"""Helpers shared by the responder's integration tests (no tests here).

Reads `model_responses` as a gateway replica does, publishes user messages as the gateway
does, and reads a consumer group's committed offsets.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tidings.common.events import (
    AnyResponseEvent,
    CancelRequest,
    ResponseDelta,
    ResponseDone,
    ResponseError,
    UserMessage,
    parse_response_event,
)
from tidings.common.kafka import ensure_topics, kafka_consumer, publish
from tidings.common.settings import KafkaSettings
from tidings.common.tracing import TRACEPARENT_HEADER, new_traceparent


@dataclass(frozen=True)
class Sent:
    message: UserMessage
    traceparent: str
    partition: int
    offset: int


class Responses:
    """Reads every partition of `model_responses`, as a gateway replica does."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self.events: dict[str, list[AnyResponseEvent]] = {}
        self.traceparents: dict[str, set[str]] = {}
        self.ended_at: dict[str, float] = {}

    async def wait_for(
        self, done: Callable[[], bool], *, timeout_s: float = 120, what: str = "responses"
    ) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not done():
                    batches = await self._consumer.getmany(timeout_ms=100)
                    for records in batches.values():
                        for record in records:
                            self._add(record)
        except TimeoutError:
            raise AssertionError(f"no {what} within {timeout_s}s: {self.events}") from None

    def _add(self, record: ConsumerRecord[bytes, bytes]) -> None:
        event = parse_response_event(record.value or b"")
        self.events.setdefault(event.message_id, []).append(event)
        if isinstance(event, ResponseDone | ResponseError):
            self.ended_at.setdefault(event.message_id, time.monotonic())
        for key, value in record.headers:
            if key == TRACEPARENT_HEADER:
                self.traceparents.setdefault(event.message_id, set()).add(value.decode())

    async def until_terminal(self, *sent: Sent, timeout_s: float = 120) -> None:
        await self.wait_for(
            lambda: all(self.terminal(s.message.message_id) for s in sent),
            timeout_s=timeout_s,
            what="terminal events",
        )

    async def until_first_delta(self, sent: Sent) -> None:
        await self.wait_for(
            lambda: any(isinstance(e, ResponseDelta) for e in self.of(sent)), what="delta"
        )

    def of(self, sent: Sent) -> list[AnyResponseEvent]:
        return self.events.get(sent.message.message_id, [])

    def terminal(self, message_id: str) -> ResponseDone | ResponseError | None:
        for event in self.events.get(message_id, []):
            if isinstance(event, ResponseDone | ResponseError):
                return event
        return None


@asynccontextmanager
async def responses(kafka: KafkaSettings) -> AsyncIterator[Responses]:
    await ensure_topics(kafka)
    async with kafka_consumer(
        kafka, kafka.model_responses_topic, group_id=None, name="test-reader"
    ) as consumer:
        yield Responses(consumer)


async def send(producer: AIOKafkaProducer, kafka: KafkaSettings, session: str, text: str) -> Sent:
    """Publish a user message as the gateway does, with a trace context."""
    message = UserMessage(message_id=uuid.uuid4().hex, session_id=session, text=text)
    traceparent = new_traceparent()
    meta = await publish(
        producer,
        kafka.user_messages_topic,
        message,
        key=session,
        headers=[(TRACEPARENT_HEADER, traceparent.encode())],
    )
    return Sent(message, traceparent, meta.partition, meta.offset)


async def committed_offsets(kafka: KafkaSettings, group_id: str) -> dict[int, int]:
    """The group's committed position per partition of `user_messages` (absent: none)."""
    # A consumer that never subscribes reads the group's offsets without joining it.
    consumer = AIOKafkaConsumer(
        group_id=group_id, enable_auto_commit=False, **kafka.client_kwargs()
    )
    await consumer.start()
    try:
        result: dict[int, int] = {}
        for partition in range(kafka.topic_partitions):
            tp = TopicPartition(kafka.user_messages_topic, partition)
            committed = await consumer.committed(tp)
            if committed is not None:
                result[partition] = committed
        return result
    finally:
        await consumer.stop()


def answers_by_source(exposition: str) -> dict[str, float]:
    """`tidings_responder_answers_total` per source, from a /metrics page."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != "tidings_responder_answers":
            continue
        for sample in family.samples:
            if sample.name == "tidings_responder_answers_total":
                source = sample.labels["source"]
                totals[source] = totals.get(source, 0) + sample.value
    return totals


def positions_after(offsets: list[tuple[int, int]]) -> dict[int, int]:
    """For (partition, offset) pairs: the position just past the last of each partition."""
    result: dict[int, int] = {}
    for partition, offset in offsets:
        result[partition] = max(result.get(partition, 0), offset + 1)
    return result


async def cancel(
    producer: AIOKafkaProducer, kafka: KafkaSettings, message_id: str, session_id: str
) -> tuple[int, int]:
    """Publish a cancel request as the gateway does (same key, so the message's partition)."""
    request = CancelRequest(message_id=message_id, session_id=session_id)
    meta = await publish(producer, kafka.user_messages_topic, request, key=session_id)
    return meta.partition, meta.offset


def done_events(reader: Responses, message_id: str) -> list[ResponseDone]:
    return [e for e in reader.events.get(message_id, []) if isinstance(e, ResponseDone)]


class FakeOllama:
    """Speaks Ollama's /api/chat streaming protocol; `mode` says how this call goes."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/chat", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if self.mode == "http-error":
            return JSONResponse({"error": f"model '{body['model']}' not found"}, status_code=404)
        return StreamingResponse(self.lines(body), media_type="application/x-ndjson")

    async def lines(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        words = ["Ollama ", "says ", "hello ", "there."]
        for index, word in enumerate(words):
            if self.mode == "error-object" and index == 0:
                yield json.dumps({"error": "out of memory"}).encode() + b"\n"
                return
            if self.mode == "die" and index == 2:
                raise RuntimeError("server died mid-stream")
            if self.mode == "no-done" and index == 2:
                return
            chunk = {
                "model": body["model"],
                "message": {"role": "assistant", "content": word},
                "done": False,
            }
            yield json.dumps(chunk).encode() + b"\n"
        final = {
            "model": body["model"],
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 21,
            "eval_count": 4,
        }
        yield json.dumps(final).encode() + b"\n"


class ResponderProcess:
    """`python -m tidings.cli.main responder` with its output in a log file."""

    def __init__(self, kafka: KafkaSettings, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "KAFKA_TOPIC_PARTITIONS": str(kafka.topic_partitions),
            "RESPONDER_GROUP_ID": f"{kafka.topic_prefix}responder",
            "RESPONDER_HOST": "127.0.0.1",
            "RESPONDER_PORT": "0",
            "RESPONDER_SESSION_TIMEOUT_MS": "6000",
            "RESPONDER_FLUSH_MS": "20",
            "LLM_BACKEND": "echo",
            "MEMORY_URL": "",
            "LOG_FORMAT": "json",
            **env,
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tidings.cli.main",
                "responder",
                env=self.env,
                stdout=log,
                stderr=log,
            )

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    async def until_logged(self, event: str, *, timeout_s: float = 60) -> None:
        for _ in range(int(timeout_s / 0.1)):
            if any(line.get("event") == event for line in self.log_lines()):
                return
            assert self.proc is not None and self.proc.returncode is None, self.tail()
            await asyncio.sleep(0.1)
        raise AssertionError(f"the responder never logged {event!r}:\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@asynccontextmanager
async def responder_process(
    kafka: KafkaSettings, log_path: Path, **env: str
) -> AsyncIterator[ResponderProcess]:
    process = ResponderProcess(kafka, log_path, **env)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()
