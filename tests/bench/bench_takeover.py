"""Responder takeover after kill -9: how long an answer cut off by a dead responder waits.

Two `tidings responder` processes (echo backend, 6 s answers) share 6 partitions; one message
per partition is published, so each responder is streaming three answers. Once every answer
has begun, one responder is killed with SIGKILL (it cannot leave its group). The figure is
the time from the kill until the last of its cut-off answers begins again (a new
`response.start` read back from `model_responses`): the group's session timeout, up to one
heartbeat of the survivor, the rebalance, and the redelivered message's first event.

Measured on Apache Kafka and on Tansu in the same run, with the liveness the deployments set
(RESPONDER_SESSION_TIMEOUT_MS 3000, RESPONDER_HEARTBEAT_INTERVAL_MS 750; their brokers set
group.min.session.timeout.ms 2000, as the local broker does) and with the responder's own
defaults (6000 / 1000, the lowest session any Kafka accepts without that setting).

Run: `.venv/bin/python tests/bench/run.py bench_takeover`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from tidings.cli.apache_kafka import KafkaNode
from tidings.cli.infra import free_port, tansu_command, wait_for_http, wait_for_port
from tidings.common.events import ResponseStart, UserMessage, new_id, parse_response_event
from tidings.common.kafka import ensure_topics, kafka_producer
from tidings.common.settings import KafkaSettings

TITLE = "Responder takeover after kill -9"

PARTITIONS = 6
TRIALS = 4
TARGET_S = 5.0
# (label, session timeout ms, heartbeat ms)
LIVENESS = (
    ("deployed (compose, k8s, make run): 3000 / 750 ms", 3000, 750),
    ("the responder's own default, for any Kafka: 6000 / 1000 ms", 6000, 1000),
)


@contextlib.contextmanager
def _process(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def _broker(kind: str, work: Path) -> Iterator[str]:
    port = free_port()
    if kind == "tansu":
        argv = tansu_command(port)
    else:
        argv = KafkaNode(port=port, controller_port=free_port(), data_dir=work / "kafka").prepare()
    with _process(argv, work / f"{kind}.log"):
        wait_for_port(port, timeout_s=90)
        yield f"127.0.0.1:{port}"


def _responder_env(
    kafka: KafkaSettings, port: int, session_ms: int, heartbeat_ms: int
) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_BROKER": kafka.broker,
        "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
        "RESPONDER_GROUP_ID": f"{kafka.topic_prefix}responder",
        "RESPONDER_HOST": "127.0.0.1",
        "RESPONDER_PORT": str(port),
        "RESPONDER_SESSION_TIMEOUT_MS": str(session_ms),
        "RESPONDER_HEARTBEAT_INTERVAL_MS": str(heartbeat_ms),
        "MEMORY_URL": "",
        "LLM_BACKEND": "echo",
        "ECHO_FIRST_TOKEN_MS": "100",
        "ECHO_TOKENS": "60",
        "ECHO_TOKENS_PER_S": "10",
        "LOG_LEVEL": "INFO",
    }


class _Starts:
    """The `response.start` events on model_responses, with the time each was read."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self.seen: dict[str, list[float]] = {}

    async def poll(self) -> None:
        for records in (await self._consumer.getmany(timeout_ms=50)).values():
            now = time.monotonic()
            for record in records:
                event = parse_response_event(record.value or b"")
                if isinstance(event, ResponseStart):
                    self.seen.setdefault(event.message_id, []).append(now)

    async def until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("no takeover within the bound")
            await self.poll()


@contextlib.asynccontextmanager
async def _starts(kafka: KafkaSettings) -> AsyncIterator[_Starts]:
    consumer = AIOKafkaConsumer(
        kafka.model_responses_topic,
        auto_offset_reset="latest",
        fetch_max_wait_ms=50,
        **kafka.client_kwargs(),
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        yield _Starts(consumer)
    finally:
        await consumer.stop()


async def _trial(kafka: KafkaSettings, victim: subprocess.Popen[bytes], starts: _Starts) -> float:
    """Publish one message per partition; kill -9 `victim` once all began; seconds to retake."""
    sent = [
        UserMessage(message_id=new_id(), session_id=new_id(), text="Tell me a long story.")
        for _ in range(PARTITIONS)
    ]
    async with kafka_producer(kafka, name="takeover") as producer:
        for partition, message in enumerate(sent):
            await producer.send_and_wait(
                kafka.user_messages_topic,
                message.to_bytes(),
                key=message.session_id.encode(),
                partition=partition,
            )
    ids = [m.message_id for m in sent]
    await starts.until(lambda: all(i in starts.seen for i in ids), 60)
    killed = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # The victim's answers are the ones that have not finished when the survivor's end:
    # rather than guess, wait for a second start of any message, then for all second starts
    # that follow within the bound (the victim's partitions move together).
    await starts.until(lambda: any(len(starts.seen[i]) > 1 for i in ids), 60)
    await asyncio.sleep(1.0)
    await starts.poll()
    restarted = [starts.seen[i][1] for i in ids if len(starts.seen[i]) > 1]
    return max(restarted) - killed


async def _measure(
    kind: str, bootstrap: str, work: Path, session_ms: int, heartbeat_ms: int
) -> list[float]:
    kafka = KafkaSettings(
        broker=kind,
        bootstrap_servers=bootstrap,
        topic_prefix=f"k{uuid.uuid4().hex[:8]}-",
        topic_partitions=PARTITIONS,
    )
    await ensure_topics(kafka)
    cli = [sys.executable, "-m", "tidings.cli.main", "responder"]
    ports = [free_port(), free_port()]
    envs = [_responder_env(kafka, port, session_ms, heartbeat_ms) for port in ports]
    logs = [work / f"{kind}-{session_ms}-responder-{i}.log" for i in range(2)]
    results: list[float] = []
    async with _starts(kafka) as starts:
        for _ in range(TRIALS):
            # Fresh processes each trial: both ready, then the group settled with two members.
            with _process(cli, logs[0], envs[0]) as first, _process(cli, logs[1], envs[1]):
                for port in ports:
                    await asyncio.to_thread(
                        wait_for_http, f"http://127.0.0.1:{port}/ready", timeout_s=90
                    )
                await asyncio.sleep(session_ms / 1000 + 2)
                results.append(await _trial(kafka, first, starts))
    return results


async def _run(work: Path) -> str:
    rows = [
        "| broker | liveness (session / heartbeat) | trials (s) | p50 (s) | max (s) | <= 5 s |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("kafka", "tansu"):
        with _broker(kind, work) as bootstrap:
            for label, session_ms, heartbeat_ms in LIVENESS:
                times = await _measure(kind, bootstrap, work, session_ms, heartbeat_ms)
                worst = max(times)
                rows.append(
                    f"| {'Apache Kafka' if kind == 'kafka' else 'Tansu'} | {label} | "
                    f"{', '.join(f'{t:.1f}' for t in times)} | {statistics.median(times):.1f} | "
                    f"{worst:.1f} | {'met' if worst <= TARGET_S else 'NOT met'} |"
                )
    return (
        "Two responders (echo backend, 6 s answers) on 6 partitions, one message per "
        "partition, one responder killed with SIGKILL once every answer has begun; the time "
        "from the kill until the last of its cut-off answers begins again on the survivor "
        f"(read back from `model_responses`). {TRIALS} trials per row, fresh processes each.\n\n"
        + "\n".join(rows)
        + "\n\nThe figure is the session timeout, up to one heartbeat of the survivor and a "
        "rebalance round. The survivor's own answers (6 s, begun with the victim's) go on "
        "through the rebalance: it rejoins at once instead of finishing them first "
        "(tidings.responder.consumer).\n"
    )


def main() -> str:
    with tempfile.TemporaryDirectory(prefix="bench-takeover-") as tmp:
        return asyncio.run(_run(Path(tmp)))


if __name__ == "__main__":
    print(main())
