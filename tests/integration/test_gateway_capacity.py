"""Nothing exhausts the gateway: a bounded load test on 127.0.0.1.

A real gateway process (`tidings gateway`) is given a memory limit; the test opens SSE
streams until it refuses them, and checks that it refused with 503 + Retry-After before its
resident memory passed the limit, and that the streams it accepted still get their answers.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.cli.infra import free_port, wait_for_http
from tidings.common.events import ResponseDelta, ResponseDone, ResponseStart, new_id
from tidings.common.kafka import ensure_topics, kafka_producer, publish
from tidings.common.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LIMIT = 192 * 1024 * 1024
MAX_STREAMS = 4000  # the loop's own bound: the gateway must refuse well before it
BATCH = 50


def resident(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(params=["derived stream cap", "memory shedding alone"])
def gateway(
    request: pytest.FixtureRequest, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[tuple[int, int]]:
    """A gateway process with GATEWAY_MEMORY_LIMIT_BYTES=LIMIT: (port, pid). Either its
    stream cap is derived from the limit, or it is lifted so that only shedding by resident
    memory can stop the flood."""
    port = free_port()
    cap = {"GATEWAY_MAX_OPEN_STREAMS": "1000000"} if request.param != "derived stream cap" else {}
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(kafka_settings.topic_partitions),
        "KAFKA_BROKER": str(kafka_settings.broker),
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_MEMORY_LIMIT_BYTES": str(LIMIT),
        # Every stream comes from 127.0.0.1: the per-client limits must not be what stops it.
        "GATEWAY_MAX_STREAMS_PER_SUBJECT": "100000",
        "GATEWAY_REQUEST_RATE_PER_S": "100000",
        "GATEWAY_REQUEST_BURST": "100000",
        "GATEWAY_ANSWER_START_TIMEOUT_S": "600",
        "MEMORY_URL": "",
        "LOG_LEVEL": "WARNING",
        **cap,
    }
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings.cli.main", "gateway"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", timeout_s=60)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Stream:
    """One raw SSE connection (a socket is far lighter than an HTTP client per stream)."""

    def __init__(self, session_id: str, message_id: str) -> None:
        self.session_id = session_id
        self.message_id = message_id
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.status = 0
        self.retry_after: str | None = None

    async def open(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write(
            (
                f"GET /stream?session_id={self.session_id}&message_id={self.message_id} "
                "HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("retry-after:"):
                self.retry_after = line.split(":", 1)[1].strip()

    async def until_done(self, timeout_s: float) -> str:
        assert self.reader is not None
        seen = b""
        async with asyncio.timeout(timeout_s):
            while b"event: done" not in seen:
                chunk = await self.reader.read(65536)
                if not chunk:
                    break
                seen += chunk
        return seen.decode(errors="replace")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def answer(kafka: KafkaSettings, streams: list[Stream]) -> None:
    async with kafka_producer(kafka, name="test-answers") as producer:
        for stream in streams:
            ids = {"session_id": stream.session_id, "message_id": stream.message_id}
            for event in (
                ResponseStart(**ids, attempt="a", source="faq"),
                ResponseDelta(**ids, attempt="a", seq=0, text="Still here."),
                ResponseDone(**ids, attempt="a", text="Still here.", source="faq"),
            ):
                await publish(producer, kafka.model_responses_topic, event, key=stream.session_id)


async def test_streams_are_refused_with_503_before_memory_runs_out(
    kafka_settings: KafkaSettings, gateway: tuple[int, int]
) -> None:
    port, pid = gateway
    await ensure_topics(kafka_settings)
    accepted: list[Stream] = []
    refused: Stream | None = None
    baseline = peak = resident(pid)
    try:
        while len(accepted) < MAX_STREAMS and refused is None:
            batch = [Stream(new_id(), new_id()) for _ in range(BATCH)]
            await asyncio.gather(*(s.open(port) for s in batch))
            peak = max(peak, resident(pid))
            for stream in batch:
                if stream.status == 200:
                    accepted.append(stream)
                else:
                    stream.close()
                    refused = refused or stream
        peak = max(peak, resident(pid))
        print(
            f"\naccepted {len(accepted)} streams; refused with {refused and refused.status}; "
            f"RSS {baseline / 2**20:.1f} MiB at start, peak {peak / 2**20:.1f} MiB of a "
            f"{LIMIT / 2**20:.0f} MiB limit; {(peak - baseline) / max(1, len(accepted)) / 1024:.0f}"
            " KiB per stream"
        )
        assert refused is not None, f"{MAX_STREAMS} streams and no refusal"
        assert refused.status == 503 and refused.retry_after is not None
        assert peak < LIMIT
        assert len(accepted) >= 100  # it refuses at capacity, not at once

        # The streams it accepted are still served: their answers arrive.
        sample = accepted[:: max(1, len(accepted) // 10)]
        await answer(kafka_settings, sample)
        for stream in sample:
            text = await stream.until_done(30)
            assert "Still here." in text and "event: done" in text
    finally:
        for stream in accepted:
            stream.close()
