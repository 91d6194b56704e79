"""Gateway benchmarks: accepted POST /chat per second against a plain FastAPI endpoint that
only writes the same event to Kafka; open SSE streams with heartbeats and resident memory;
pipeline overhead at 50 concurrent sessions, through the real responder with the `echo` backend
and through a minimal simulated responder that stamps its chunks (to split the figure into hops).

Everything runs on 127.0.0.1 in bounded loops, once on Apache Kafka (a single KRaft node,
tidings.cli.apache_kafka, the clients with compose's settings) and once on Tansu (its
workarounds on, KAFKA_BROKER=tansu), side by side in one run: the broker, the gateway (`tidings
gateway`, its own process), the plain endpoint and the simulated responder (each its own
process, started from this file), and the load generator here, on raw asyncio sockets so
the generator costs as little CPU as possible on a 2-core machine.

Run: `.venv/bin/python tests/bench/run.py bench_gateway`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from tidings.common.settings import KafkaSettings

T = TypeVar("T")

TITLE = "Gateway: accepted messages, open streams, pipeline overhead"

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
TIDINGS = str(Path(PYTHON).with_name("tidings"))

POST_CONCURRENCY = 32
# Many short alternating rounds, compared by their medians: on a shared 2-core machine one
# round can lose a fifth of its rate to a neighbour, and the median shrugs that off.
POST_SECONDS = 3.0
POST_ROUNDS = 10
STREAMS = 2000
STREAM_PING_S = 2.0
STREAM_WINDOW_S = 7.0
PIPE_SESSIONS = 50
PIPE_ROUNDS = 8
# Rounds of the same load before the measured ones (50 x 60 = 3,000 answers, about 20 s).
PIPE_WARMUP_ROUNDS = 60
# Concurrent sessions are independent users: each starts at a random moment and reads the
# answer for a random pause (uniform, up to this long) before its next message, about 130
# messages a second for 50 sessions. The lockstep case - all 50 posting at the same instant
# after every answer - is measured too, and reported as a burst.
PIPE_THINK_S = 0.25
FIRST_TOKEN_DELAY_S = 0.1
CHUNKS = 5
CHUNK_GAP_S = 0.02


# --- processes --------------------------------------------------------------------------


class Proc:
    """A child process with its output in a log file; stopped by its own pid only."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = (log_dir / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


async def _until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


def _free_port() -> int:
    from tidings.cli.infra import free_port

    return free_port()


async def _wait_http(port: int, path: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"port {port}{path} did not become ready")


@contextlib.contextmanager
def _stack(log_dir: Path, broker: str) -> Iterator[dict[str, Any]]:
    """A broker of `broker`'s kind ("kafka": Apache Kafka, "tansu") and the processes to stop."""
    from tidings.cli.apache_kafka import KafkaNode
    from tidings.cli.infra import tansu_command, wait_for_port

    procs: list[Proc] = []
    broker_port = _free_port()
    log_dir = log_dir / broker
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        if broker == "tansu":
            command = tansu_command(broker_port)
        else:
            node = KafkaNode(port=broker_port, controller_port=_free_port(), data_dir=log_dir)
            command = node.prepare()
        procs.append(Proc(broker, command, {}, log_dir))
        wait_for_port(broker_port, timeout_s=90)
        yield {
            "bootstrap": f"{HOST}:{broker_port}",
            "broker": broker,
            "procs": procs,
            "log_dir": log_dir,
        }
    finally:
        for proc in reversed(procs):
            proc.stop()


def _kafka_env(stack: dict[str, Any], prefix: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": stack["bootstrap"],
        "KAFKA_BROKER": stack["broker"],
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_TOPIC_PARTITIONS": "6",
        "LOG_LEVEL": "WARNING",
    }


def _start_gateway(stack: dict[str, Any], prefix: str, **extra: str) -> tuple[Proc, int]:
    port = _free_port()
    env = {
        **_kafka_env(stack, prefix),
        "GATEWAY_HOST": HOST,
        "GATEWAY_PORT": str(port),
        "MEMORY_URL": "",
        # The bench drives everything from one address: lift the per-caller limits.
        "GATEWAY_RATE_PER_S": "1000000",
        "GATEWAY_RATE_BURST": "1000000",
        "GATEWAY_REQUEST_RATE_PER_S": "1000000",
        "GATEWAY_REQUEST_BURST": "1000000",
        "GATEWAY_MAX_STREAMS_PER_SUBJECT": "100000",
        **extra,
    }
    proc = Proc(f"gateway-{port}", [TIDINGS, "gateway"], env, stack["log_dir"])
    stack["procs"].append(proc)
    return proc, port


# --- a minimal HTTP/1.1 client on raw sockets ---------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return status


def _post(path: str, body: bytes, accept: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Accept: {accept}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _post_loop(port: int, seconds: float) -> tuple[int, int]:
    """Keep-alive POST /chat for `seconds`: (accepted, other)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    accepted = other = 0
    session = uuid.uuid4().hex
    request = _post(
        "/chat", json.dumps({"message": "Where is my order?", "session_id": session}).encode()
    )
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            if await _read_response(reader) == 202:
                accepted += 1
            else:
                other += 1
    finally:
        writer.close()
    return accepted, other


async def _throughput(port: int) -> tuple[float, int]:
    results = await asyncio.gather(
        *(_post_loop(port, POST_SECONDS) for _ in range(POST_CONCURRENCY))
    )
    return sum(a for a, _ in results) / POST_SECONDS, sum(o for _, o in results)


# --- (a) accepted POST /chat per second -----------------------------------------------------


class PlainBody(BaseModel):
    """The baseline's body: the same fields, validated by FastAPI the usual way."""

    model_config = ConfigDict(extra="forbid")
    message: str
    session_id: str | None = None


def plain_main(port: int) -> None:
    """The baseline: FastAPI, validate the body, write the same event to Kafka, 202."""
    from fastapi import FastAPI

    from tidings.common.events import UserMessage, new_id
    from tidings.common.kafka import ensure_topics, kafka_producer, publish
    from tidings.common.runtime import HttpServer, run_service
    from tidings.common.settings import KafkaSettings

    async def main(stop: asyncio.Event) -> None:
        settings = KafkaSettings()
        await ensure_topics(settings)
        async with kafka_producer(settings, name="plain") as producer:
            app = FastAPI()

            @app.post("/chat", status_code=202)
            async def chat(body: PlainBody) -> dict[str, str]:
                message = UserMessage(
                    message_id=new_id(), session_id=body.session_id or new_id(), text=body.message
                )
                await publish(
                    producer, settings.user_messages_topic, message, key=message.session_id
                )
                return {"session_id": message.session_id, "message_id": message.message_id}

            @app.get("/health")
            async def health() -> dict[str, str]:
                return {"status": "ok"}

            server = HttpServer(app, HOST, port, name="plain")
            await server.start()
            await stop.wait()

    # The same runtime as the gateway's (run_service: uvloop, httptools).
    run_service(main)


def _rounds(rates: list[float]) -> str:
    return ", ".join(f"{rate:.0f}" for rate in rates)


async def _bench_post(stack: dict[str, Any]) -> tuple[str, dict[str, float]]:
    prefix = f"b{uuid.uuid4().hex[:8]}-"
    gateway, gw_port = _start_gateway(stack, prefix)
    plain_port = _free_port()
    plain = Proc(
        "plain",
        [PYTHON, __file__, "plain", str(plain_port)],
        _kafka_env(stack, prefix),
        stack["log_dir"],
    )
    stack["procs"].append(plain)
    await _wait_http(gw_port, "/ready")
    await _wait_http(plain_port, "/health")
    await _throughput(gw_port)  # warm-up both (connections, topic metadata)
    await _throughput(plain_port)
    rates: dict[str, list[float]] = {"gateway": [], "plain": []}
    errors = 0
    for _ in range(POST_ROUNDS):
        for name, port in (("gateway", gw_port), ("plain", plain_port)):
            rate, other = await _throughput(port)
            rates[name].append(rate)
            errors += other
    gateway.stop()
    plain.stop()
    gw, pl = statistics.median(rates["gateway"]), statistics.median(rates["plain"])
    ratio = gw / pl
    text = (
        f"| endpoint | accepted/s (per round) | median |\n|---|---|---|\n"
        f"| gateway `POST /chat` | {_rounds(rates['gateway'])} | {gw:.0f} |\n"
        f"| plain FastAPI + Kafka write | {_rounds(rates['plain'])} | {pl:.0f} |\n\n"
        f"Ratio of the medians, gateway / plain: **{ratio:.2f}** (target >= 0.8: "
        f"{'met' if ratio >= 0.8 else 'NOT met'}). Non-202 answers: {errors}. "
        f"{POST_CONCURRENCY} keep-alive connections, {POST_SECONDS:.0f} s per round, rounds "
        f"alternate; both wait for the broker's acknowledgement (acks=all) and log at WARNING.\n"
    )
    return text, {"post_ratio": ratio}


# --- (b) open SSE streams with heartbeats ----------------------------------------------------


async def _hold_stream(port: int, opened: asyncio.Event, counts: list[int], index: int) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        session = f"bench-stream-{index:06d}"
        writer.write(
            f"GET /stream?session_id={session} HTTP/1.1\r\nHost: bench\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        status = await reader.readline()
        if b" 200 " not in status:
            counts[index] = -1
            return
        opened.set()
        while line := await reader.readline():
            if line.startswith(b": ping"):
                counts[index] += 1
    finally:
        writer.close()


async def _bench_streams(stack: dict[str, Any]) -> tuple[str, dict[str, float]]:
    prefix = f"s{uuid.uuid4().hex[:8]}-"
    gateway, port = _start_gateway(stack, prefix, GATEWAY_SSE_PING_S=str(STREAM_PING_S))
    await _wait_http(port, "/ready")
    idle_rss = gateway.rss_mib()
    counts = [0] * STREAMS
    opened = asyncio.Event()
    started = time.monotonic()
    tasks = []
    for index in range(STREAMS):
        tasks.append(asyncio.create_task(_hold_stream(port, opened, counts, index)))
        if index % 100 == 99:
            await asyncio.sleep(0.05)  # open in waves, as browsers would, not one SYN flood
    await asyncio.sleep(1.0)
    open_s = time.monotonic() - started
    baseline = list(counts)
    await asyncio.sleep(STREAM_WINDOW_S)
    window = [c - b for c, b in zip(counts, baseline, strict=True)]
    alive = sum(1 for task in tasks if not task.done())
    flowing = sum(1 for c in window if c >= 2)
    rss = gateway.rss_mib()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    gateway.stop()
    text = (
        f"{STREAMS} `GET /stream` connections opened in {open_s:.1f} s; after a "
        f"{STREAM_WINDOW_S:.0f} s window with `GATEWAY_SSE_PING_S={STREAM_PING_S:g}`: "
        f"**{alive}** still open, **{flowing}** received at least 2 heartbeats in the window "
        f"(target >= 2,000 held with heartbeats: {'met' if flowing >= 2000 else 'NOT met'}).\n\n"
        f"Gateway resident memory: {idle_rss:.0f} MiB idle, **{rss:.0f} MiB** with the streams "
        f"open ({(rss - idle_rss) * 1024 / max(alive, 1):.0f} KiB per stream).\n"
    )
    return text, {"streams_flowing": flowing, "rss_mib": rss}


# --- (c) pipeline overhead with a simulated responder ------------------------------------------


def responder_main(delay_s: float) -> None:
    """A simulated responder: waits `delay_s`, then streams CHUNKS chunks stamped with the
    wall-clock time they were produced, then done."""
    from tidings.common.events import (
        ResponseDelta,
        ResponseDone,
        ResponseStart,
        UserMessage,
        parse_inbound_event,
    )
    from tidings.common.kafka import ensure_topics, kafka_consumer, kafka_producer
    from tidings.common.pacing import FetchPacer
    from tidings.common.settings import KafkaSettings

    async def main() -> None:
        settings = KafkaSettings()
        await ensure_topics(settings)
        topic = settings.model_responses_topic
        async with (
            kafka_producer(settings, name="sim-responder") as producer,
            kafka_consumer(
                settings,
                settings.user_messages_topic,
                group_id=None,
                name="sim",
                auto_offset_reset="latest",
            ) as consumer,
        ):
            await _until(lambda: len(consumer.assignment()) == settings.topic_partitions)
            for tp in consumer.assignment():
                await consumer.position(tp)
            # Paced like the real responder's consumer (tidings.common.pacing).
            pacer = FetchPacer.from_settings(settings, name="sim-responder")
            pacer.attach(consumer)
            ready = Path(os.environ["BENCH_READY_FILE"])
            await asyncio.to_thread(ready.write_text, "ready")

            lag_file = Path(os.environ["BENCH_LAG_FILE"])

            def note_lag(line: str) -> None:
                with lag_file.open("a") as out:
                    out.write(line)

            async def answer(message: UserMessage) -> None:
                # How long the message took from the gateway to this consumer (same clock),
                # written down once the answer is out.
                lag = f"{(time.time() - message.ts.timestamp()) * 1000:.2f}\n"
                ids = {
                    "session_id": message.session_id,
                    "message_id": message.message_id,
                    "attempt": "a",
                }
                key = message.session_id.encode()
                await producer.send(topic, ResponseStart(**ids, source="llm").to_bytes(), key=key)
                await asyncio.sleep(delay_s)
                for seq in range(CHUNKS):
                    chunk = ResponseDelta(**ids, seq=seq, text=f"{time.time():.6f} ")
                    await producer.send(topic, chunk.to_bytes(), key=key)
                    await asyncio.sleep(CHUNK_GAP_S)
                await producer.send(
                    topic, ResponseDone(**ids, text="done", source="llm").to_bytes(), key=key
                )
                note_lag(lag)

            tasks: set[asyncio.Task[None]] = set()
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                if batches:
                    pacer.touch()
                else:
                    pacer.tick()
                for records in batches.values():
                    for record in records:
                        event = parse_inbound_event(record.value or b"")
                        if isinstance(event, UserMessage):
                            task = asyncio.create_task(answer(event))
                            tasks.add(task)
                            task.add_done_callback(tasks.discard)

    _run(main())


async def _session(
    port: int,
    rounds: int,
    firsts: list[float],
    chunks: list[float] | None,
    heads: list[float] | None = None,
    message: str = "hello",
    pauses: random.Random | None = None,
) -> None:
    """One session: `rounds` messages, each streamed to its `done` in the POST's response.

    `chunks` None: the answer's tokens are plain text (the real responder), not the
    simulated responder's production stamps. `pauses`: wait a random time (up to
    PIPE_THINK_S) before each message; None posts the next message at once.
    """
    reader, writer = await asyncio.open_connection(HOST, port)
    session = uuid.uuid4().hex
    try:
        for _ in range(rounds):
            if pauses is not None:
                await asyncio.sleep(pauses.uniform(0, PIPE_THINK_S))
            body = json.dumps({"message": message, "session_id": session}).encode()
            sent = time.time()
            writer.write(_post("/chat", body, accept="text/event-stream"))
            status = await reader.readline()
            if b" 200 " not in status:
                raise RuntimeError(f"POST /chat answered {status!r}")
            if heads is not None:
                heads.append(time.time() - sent)
            first = True
            event = b""
            while True:
                line = await reader.readline()
                if line.startswith(b"event: "):
                    event = line[7:].strip()
                elif line.startswith(b"data: ") and event == b"token":
                    received = time.time()
                    if chunks is not None:
                        produced = float(json.loads(line[6:])["delta"])
                        chunks.append(received - produced)
                    if first:
                        firsts.append(received - sent - FIRST_TOKEN_DELAY_S)
                        first = False
                elif line.startswith(b"data: ") and event in (b"done", b"error"):
                    if event == b"error":
                        raise RuntimeError(f"answer ended with error: {line!r}")
                    break
            # The chunked response ends with a zero-length chunk.
            while (await reader.readline()) not in (b"0\r\n",):
                pass
            await reader.readline()
    finally:
        writer.close()


# A question that neither the order tool nor the FAQ answers, so it goes to the LLM backend.
ECHO_QUESTION = "Could you describe the view from a lighthouse at dawn?"


def _start_echo(stack: dict[str, Any], **extra: str) -> tuple[list[Proc], int, int]:
    """A gateway and the real responder with the echo backend, on fresh topics."""
    prefix = f"e{uuid.uuid4().hex[:8]}-"
    gateway, port = _start_gateway(stack, prefix, **extra)
    ops_port = _free_port()
    responder = Proc(
        f"responder-echo-{ops_port}",
        [TIDINGS, "responder"],
        {
            **_kafka_env(stack, prefix),
            "RESPONDER_GROUP_ID": f"{prefix}responder",
            "RESPONDER_HOST": HOST,
            "RESPONDER_PORT": str(ops_port),
            "MEMORY_URL": "",
            "LLM_BACKEND": "echo",
            "ECHO_FIRST_TOKEN_MS": str(FIRST_TOKEN_DELAY_S * 1000),
            "ECHO_TOKENS": str(CHUNKS),
            "ECHO_TOKENS_PER_S": str(1 / CHUNK_GAP_S),
            # 50 sessions answer at once; the default 8 would measure queueing for the
            # responder's slots, not the pipeline.
            "RESPONDER_MAX_CONCURRENCY": str(PIPE_SESSIONS + 14),
            **extra,
        },
        stack["log_dir"],
    )
    stack["procs"].append(responder)
    return [responder, gateway], port, ops_port


@dataclass
class EchoRun:
    """First-token delays and response-header times (s) of one echo-pipeline load."""

    alone: list[float] = field(default_factory=list)
    firsts: list[float] = field(default_factory=list)
    heads: list[float] = field(default_factory=list)
    burst: list[float] = field(default_factory=list)
    burst_heads: list[float] = field(default_factory=list)
    took: float = 0.0
    burst_took: float = 0.0


async def _warm_up(port: int) -> None:
    """Warm-up, not measured: 50 sessions for PIPE_WARMUP_ROUNDS rounds through the echo
    pipeline behind `port`. Apache Kafka's JVM compiles its fetch, group and commit paths
    during the first 20-30 s of such load (about 3,000 messages; cold, its CPU is 3x and the
    first-token p99 59 ms against 22 ms warm, issue 17's probe)."""
    await asyncio.gather(
        *(
            _session(port, PIPE_WARMUP_ROUNDS, [], None, None, ECHO_QUESTION, random.Random(i))
            for i in range(PIPE_SESSIONS)
        )
    )


async def warm_broker(bootstrap: str, log_dir: Path) -> float:
    """Warm an Apache Kafka broker up as (c) does, through a gateway and an echo responder
    of their own (fresh topics, stopped after); the seconds it took."""
    stack: dict[str, Any] = {
        "bootstrap": bootstrap,
        "broker": "kafka",
        "procs": [],
        "log_dir": log_dir,
    }
    started = time.monotonic()
    procs, port, ops_port = _start_echo(stack)
    try:
        await _wait_http(port, "/ready")
        await _wait_http(ops_port, "/ready", timeout_s=90)
        await _warm_up(port)
    finally:
        for proc in procs:
            proc.stop()
    return time.monotonic() - started


async def _echo_load(stack: dict[str, Any], *, burst: bool, **extra: str) -> EchoRun:
    """Through a fresh gateway and echo responder: one session alone, 50 independent
    sessions and - with `burst` - the same 50 in lockstep."""
    procs, port, ops_port = _start_echo(stack, **extra)
    await _wait_http(port, "/ready")
    await _wait_http(ops_port, "/ready", timeout_s=90)
    # The earlier POST rounds, which only produce, do not warm the broker's fetch, group and
    # commit paths. Both brokers get the same warm-up.
    await _warm_up(port)
    run = EchoRun()
    await _session(port, 20, run.alone, None, message=ECHO_QUESTION)
    pauses = random.Random(PIPE_SESSIONS)
    started = time.monotonic()
    await asyncio.gather(
        *(
            _session(port, PIPE_ROUNDS, run.firsts, None, run.heads, ECHO_QUESTION, pauses)
            for _ in range(PIPE_SESSIONS)
        )
    )
    run.took = time.monotonic() - started
    if burst:
        started = time.monotonic()
        await asyncio.gather(
            *(
                _session(port, PIPE_ROUNDS, run.burst, None, run.burst_heads, ECHO_QUESTION)
                for _ in range(PIPE_SESSIONS)
            )
        )
        run.burst_took = time.monotonic() - started
    for proc in procs:
        proc.stop()
    return run


async def _bench_pipeline_echo(stack: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """The same load through the real responder (`tidings responder`, LLM_BACKEND=echo);
    then once more with fetch pacing off (the busy wait = the idle one), for comparison."""
    paced = await _echo_load(stack, burst=True)
    alone, firsts, heads, took = paced.alone, paced.firsts, paced.heads, paced.took
    burst, burst_heads, burst_took = paced.burst, paced.burst_heads, paced.burst_took
    settings = KafkaSettings(broker=stack["broker"])
    idle_ms = settings.fetch_max_wait_ms
    paced_here = stack["broker"] == "tansu"
    if paced_here:
        unpaced_run = await _echo_load(stack, burst=False, KAFKA_FETCH_BUSY_WAIT_MS=str(idle_ms))
    else:
        unpaced_run = EchoRun()
    unpaced_alone, unpaced = unpaced_run.alone, unpaced_run.firsts
    p50, p99 = _pct(firsts, 0.5), _pct(firsts, 0.99)
    # Issue 17's target on Apache Kafka; Tansu is held to the earlier p50 <= 10, p99 <= 40.
    limits = (5, 20) if stack["broker"] == "kafka" else (10, 40)
    met = "met" if p50 <= limits[0] and p99 <= limits[1] else "NOT met"
    fetching = (
        f"The responder and the gateway's fan-out fetch with the busy wait "
        f"(KAFKA_FETCH_BUSY_WAIT_MS, {settings.fetch_busy_wait_ms} ms) while messages flow and "
        f"clients wait for answers, KAFKA_FETCH_MAX_WAIT_MS ({idle_ms} ms) otherwise (fetch "
        f"pacing, Tansu only); the last two rows are a fresh gateway and responder with pacing "
        f"off (every fetch waits {idle_ms} ms), in the same run."
        if paced_here
        else f"Every fetch carries KAFKA_FETCH_MAX_WAIT_MS={idle_ms} ms, as compose and "
        f"Kubernetes ship it; Kafka answers as soon as a record arrives (no pacing)."
    )
    text = (
        f"The real responder (`tidings responder`, `LLM_BACKEND=echo`, first token after "
        f"{FIRST_TOKEN_DELAY_S * 1000:.0f} ms, {CHUNKS} tokens {CHUNK_GAP_S * 1000:.0f} ms apart, "
        f"RESPONDER_MAX_CONCURRENCY={PIPE_SESSIONS + 14}), a question that goes to the LLM "
        f"backend (no tool, no FAQ). After a warm-up of the same load, {PIPE_WARMUP_ROUNDS} "
        f"rounds, not measured (the JVM broker's first 20-30 s of it are slower): "
        f"{PIPE_SESSIONS} concurrent sessions x {PIPE_ROUNDS} "
        f"messages, each session pausing a random 0-{PIPE_THINK_S * 1000:.0f} ms before every "
        f"message ({len(firsts)} answers in {took:.1f} s, {len(firsts) / took:.0f}/s); then the "
        f"same sessions in lockstep, all {PIPE_SESSIONS} posting at the same instant after "
        f"every answer ({len(burst)} answers in {burst_took:.1f} s, "
        f"{len(burst) / burst_took:.0f}/s). {fetching}\n\n"
        f"| measure | p50 | p99 | target |\n|---|---|---|---|\n"
        f"| POST to first token, minus the echo backend's first-token delay | {p50:.1f} ms | "
        f"{p99:.1f} ms | p50 <= {limits[0]}, p99 <= {limits[1]}: {met} |\n"
        f"| POST to response headers (message acknowledged by the broker) | "
        f"{_pct(heads, 0.5):.1f} ms | {_pct(heads, 0.99):.1f} ms | - |\n"
        f"| lockstep burst: POST to first token minus delay | "
        f"{_pct(burst, 0.5):.1f} ms | {_pct(burst, 0.99):.1f} ms | - |\n"
        f"| lockstep burst: POST to response headers | "
        f"{_pct(burst_heads, 0.5):.1f} ms | {_pct(burst_heads, 0.99):.1f} ms | - |\n"
        f"| one session alone (20 messages): POST to first token minus delay | "
        f"{_pct(alone, 0.5):.1f} ms | {_pct(alone, 0.99):.1f} ms | - |\n"
        + (
            f"| pacing off, 50 sessions: POST to first token minus delay | "
            f"{_pct(unpaced, 0.5):.1f} ms | {_pct(unpaced, 0.99):.1f} ms | - |\n"
            f"| pacing off, one session alone | "
            f"{_pct(unpaced_alone, 0.5):.1f} ms | {_pct(unpaced_alone, 0.99):.1f} ms | - |\n"
            if paced_here
            else ""
        )
        + "\n"
        f"In the burst, {PIPE_SESSIONS} requests reach the gateway within a millisecond and "
        f"its one event loop takes them in turn; the last waits for the other "
        f"{PIPE_SESSIONS - 1} (see the response-header row).\n"
    )
    return text, {"p50": p50, "p99": p99}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _bench_pipeline(stack: dict[str, Any]) -> tuple[str, dict[str, float]]:
    prefix = f"p{uuid.uuid4().hex[:8]}-"
    gateway, port = _start_gateway(stack, prefix)
    ready_file = stack["log_dir"] / f"{prefix}responder.ready"
    lag_file = stack["log_dir"] / f"{prefix}responder.lags"
    responder = Proc(
        "sim-responder",
        [PYTHON, __file__, "responder", str(FIRST_TOKEN_DELAY_S)],
        {
            **_kafka_env(stack, prefix),
            "BENCH_READY_FILE": str(ready_file),
            "BENCH_LAG_FILE": str(lag_file),
        },
        stack["log_dir"],
    )
    stack["procs"].append(responder)
    await _wait_http(port, "/ready")
    await _until(ready_file.exists)
    await _session(port, 2, [], [])  # warm-up
    alone: list[float] = []
    alone_chunks: list[float] = []
    alone_heads: list[float] = []
    await _session(port, 20, alone, alone_chunks, alone_heads)
    firsts: list[float] = []
    chunks: list[float] = []
    heads: list[float] = []
    pauses = random.Random(PIPE_SESSIONS)
    started = time.monotonic()
    await asyncio.gather(
        *(
            _session(port, PIPE_ROUNDS, firsts, chunks, heads, pauses=pauses)
            for _ in range(PIPE_SESSIONS)
        )
    )
    took = time.monotonic() - started
    await asyncio.sleep(0.5)  # the last answers' lags are written
    lags = [float(v) / 1000 for v in lag_file.read_text().split()]
    lags_alone, lags_loaded = lags[2:22], lags[22:]
    responder.stop()
    gateway.stop()
    p50, p99 = _pct(firsts, 0.5), _pct(firsts, 0.99)
    c50, c99 = _pct(chunks, 0.5), _pct(chunks, 0.99)
    text = (
        f"{PIPE_SESSIONS} concurrent sessions x {PIPE_ROUNDS} messages, pausing a random "
        f"0-{PIPE_THINK_S * 1000:.0f} ms before each ({len(firsts)} answers in "
        f"{took:.1f} s), `POST /chat` with `Accept: text/event-stream`, simulated first-token "
        f"delay {FIRST_TOKEN_DELAY_S * 1000:.0f} ms, {CHUNKS} chunks {CHUNK_GAP_S * 1000:.0f} ms "
        f"apart.\n\n"
        f"| measure | p50 | p99 | target |\n|---|---|---|---|\n"
        f"| POST to first token, minus the simulated delay | {p50:.1f} ms | {p99:.1f} ms | "
        f"p50 <= 10, p99 <= 40: {'met' if p50 <= 10 and p99 <= 40 else 'NOT met'} |\n"
        f"| chunk produced (responder) to client | {c50:.1f} ms | {c99:.1f} ms | - |\n"
        f"| POST to response headers (message acknowledged by the broker) | "
        f"{_pct(heads, 0.5):.1f} ms | {_pct(heads, 0.99):.1f} ms | - |\n"
        f"| one session alone (20 messages): POST to first token minus delay | "
        f"{_pct(alone, 0.5):.1f} ms | {_pct(alone, 0.99):.1f} ms | - |\n"
        f"| one session alone: chunk produced to client | "
        f"{_pct(alone_chunks, 0.5):.1f} ms | {_pct(alone_chunks, 0.99):.1f} ms | - |\n"
        f"| one session alone: POST to response headers | "
        f"{_pct(alone_heads, 0.5):.1f} ms | {_pct(alone_heads, 0.99):.1f} ms | - |\n"
        f"| message created (gateway) to consumed (simulated responder), 50 sessions | "
        f"{_pct(lags_loaded, 0.5):.1f} ms | {_pct(lags_loaded, 0.99):.1f} ms | - |\n"
        f"| the same, one session alone | "
        f"{_pct(lags_alone, 0.5):.1f} ms | {_pct(lags_alone, 0.99):.1f} ms | - |\n\n"
        "The first figure includes every hop: the gateway publishing to `user_messages`, the "
        "simulated responder fetching it and producing to `model_responses`, the gateway's "
        "fan-out fetching that and writing SSE, all on one 2-core machine with the broker.\n"
    )
    return text, {"p50": p50, "p99": p99}


async def _run_broker(log_dir: Path, broker: str, *, streams: bool) -> tuple[str, dict[str, float]]:
    with _stack(log_dir, broker) as stack:
        post, post_figures = await _bench_post(stack)
        opened = (await _bench_streams(stack))[0] if streams else ""
        echo, echo_figures = await _bench_pipeline_echo(stack)
        pipeline, sim_figures = await _bench_pipeline(stack)
    name = "Apache Kafka" if broker == "kafka" else "Tansu"
    text = (
        f"### {name}: (a) accepted `POST /chat` per second, one process\n\n"
        + post
        + "\n"
        + (
            f"### {name}: (b) open SSE streams on one process\n\n" + opened + "\n"
            if streams
            else ""
        )
        + f"### {name}: (c) pipeline overhead at 50 concurrent sessions, echo backend\n\n"
        + echo
        + "\n"
        "The same load with a minimal simulated responder (one consumer that answers every "
        "message at once and stamps each chunk with the time it was produced), which splits "
        "the figure into its hops:\n\n" + pipeline + "\n"
    )
    figures = {
        "post_ratio": post_figures["post_ratio"],
        "echo_p50": echo_figures["p50"],
        "echo_p99": echo_figures["p99"],
        "sim_p50": sim_figures["p50"],
        "sim_p99": sim_figures["p99"],
    }
    return text, figures


async def _run_all(log_dir: Path) -> str:
    kafka, on_kafka = await _run_broker(log_dir, "kafka", streams=True)
    tansu, on_tansu = await _run_broker(log_dir, "tansu", streams=False)
    rows = "".join(
        f"| {label} | {on_kafka[key]:.{digits}f} | {on_tansu[key]:.{digits}f} |\n"
        for label, key, digits in (
            ("`POST /chat` accepted/s, gateway / plain endpoint", "post_ratio", 2),
            (
                "echo pipeline, 50 sessions: POST to first token minus delay, p50 (ms)",
                "echo_p50",
                1,
            ),
            ("the same, p99 (ms)", "echo_p99", 1),
            ("simulated responder: POST to first token minus delay, p50 (ms)", "sim_p50", 1),
            ("the same, p99 (ms)", "sim_p99", 1),
        )
    )
    summary = (
        "Side by side in this run (details below):\n\n"
        "| measure | Apache Kafka | Tansu |\n|---|---|---|\n" + rows + "\n"
        "Target on Apache Kafka (issue 17): echo pipeline p50 <= 5 ms, p99 <= 20 ms: "
        + ("met" if on_kafka["echo_p50"] <= 5 and on_kafka["echo_p99"] <= 20 else "NOT met")
        + ".\n\n"
    )
    return (
        summary
        + kafka
        + tansu
        + "Command: `.venv/bin/python tests/bench/run.py bench_gateway`. The bench lifts the "
        "per-caller rate limit and stream cap (all load comes from 127.0.0.1).\n"
    )


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop with the services' collector settings (`settle_heap`): the simulated
    responder is measured like a service, and the load generator - which reads every SSE
    line of 50 sessions - should add as little of its own delay as it can."""
    import uvloop

    from tidings.common.runtime import settle_heap

    settle_heap()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def main() -> str:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        return _run(_run_all(Path(tmp)))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "plain":
        plain_main(int(sys.argv[2]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "responder":
        responder_main(float(sys.argv[2]))
    else:
        print(main())
