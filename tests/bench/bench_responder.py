"""Responder benchmarks: time to first token through the stack, and answers per second.

(a) The same prompts to the same llama.cpp server, side by side in one run: called directly
    with the OpenAI client, and through the whole stack (POST /chat with
    `Accept: text/event-stream` on an in-process gateway -> Kafka -> responder -> Kafka ->
    gateway -> SSE first `token`). The difference is what Tidings adds.
(b) The `echo` backend at zero delay: answers per second of one responder process
    (`python -m tidings.cli.main responder`), messages queued up front.
(c) The `echo` backend with 1 s generations and RESPONDER_MAX_CONCURRENCY=32.
(d) Cancel: from publishing a cancel request to reading the answer's `cancelled` end (<= 1 s).
Plus the FAQ's precision and recall on the labelled phrasings of the unit tests.

Run: `.venv/bin/python tests/bench/run.py bench_responder`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaConsumer
from bench_gateway import PIPE_SESSIONS, PIPE_WARMUP_ROUNDS, warm_broker
from httpx_sse import aconnect_sse
from openai import AsyncOpenAI

from tidings.cli.apache_kafka import KafkaNode
from tidings.cli.infra import (
    LLAMA_MODEL_ALIAS,
    free_port,
    llama_server_command,
    tansu_command,
    wait_for_http,
    wait_for_port,
)
from tidings.common.events import (
    CancelRequest,
    ResponseDelta,
    ResponseDone,
    ResponseError,
    ResponseEvent,
    UserMessage,
    parse_response_event,
)
from tidings.common.kafka import ensure_topics, kafka_consumer, kafka_producer
from tidings.common.logging import configure_logging
from tidings.common.settings import KafkaSettings, LLMSettings, LogSettings
from tidings.responder.faq import load_faq
from tidings.responder.faq.quality import Case, evaluate

TITLE = "Responder: time to first token, answers per second, FAQ quality"

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = [
    "Write one sentence about dragons.",
    "Name a famous novel about the sea.",
    "Why do people enjoy poetry?",
    "Describe a library in one sentence.",
    "What makes a good mystery story?",
    "Give me a title for a book about cats.",
    "Tell me a fun fact about paper.",
    "Suggest a name for a bookstore cafe.",
    "What is a haiku?",
    "Describe autumn in five words.",
    "Who might enjoy science fiction?",
    "Write a short greeting for a reader.",
]
ROUNDS = 15  # each prompt, both ways, this many times


@contextlib.contextmanager
def process(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def direct_ttft(client: AsyncOpenAI, llm: LLMSettings, prompt: str) -> float:
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model=llm.openai_model,
        messages=[
            {"role": "system", "content": llm.llm_system_prompt},
            {"role": "user", "content": prompt},
        ],
        max_tokens=llm.llm_max_tokens,
        temperature=llm.llm_temperature,
        stream=True,
        stream_options={"include_usage": True},
    )
    first: float | None = None
    async for chunk in stream:
        if first is None and any(c.delta.content for c in chunk.choices):
            first = time.perf_counter() - started
    assert first is not None, "the model produced no text"
    return first


async def stack_ttft(
    http: httpx.AsyncClient, prompt: str, parts: dict[str, list[float]] | None = None
) -> float | None:
    """Time to the first SSE `token`; `parts` collects the responder's own timings (ms).

    None when the answer is not the model's: a sampled first sentence that speaks for the
    store is withheld (the refusal, `source: fallback`), which times the guard, not the
    stack."""
    started = time.perf_counter()
    first: float | None = None
    data: dict[str, Any] = {}
    async with aconnect_sse(
        http, "POST", "/chat", json={"message": prompt}, headers={"accept": "text/event-stream"}
    ) as source:
        async for sse in source.aiter_sse():
            if sse.event == "token" and first is None:
                first = time.perf_counter() - started
            if sse.event in ("done", "error"):
                data = json.loads(sse.data)
                assert sse.event == "done", data
                # No break: the stream is read to its end, as the widget reads it, so the
                # connection is kept for the next request (leaving it mid-stream closes it,
                # and the next request would pay a new connection that no client pays).
    assert first is not None, "no token event"
    if data.get("source") != "llm":
        assert (data.get("source"), data.get("reason")) == ("fallback", "withheld"), data
        return None
    if parts is not None:
        for name in ("queue_ms", "first_token_ms"):
            parts.setdefault(name, []).append(float(data["timings"][name]))
    return first


def stack_env(kafka: KafkaSettings, llm: LLMSettings) -> dict[str, str]:
    """Environment of the stack's processes: this broker and model, no memory service."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_BROKER": kafka.broker,
        "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(kafka.topic_partitions),
        "LLM_BACKEND": "openai",
        "OPENAI_BASE_URL": llm.openai_base_url or "",
        "OPENAI_MODEL": llm.openai_model,
        "LLM_MAX_TOKENS": str(llm.llm_max_tokens),
        "LLM_TEMPERATURE": str(llm.llm_temperature),
        "LLM_TIMEOUT": str(llm.llm_timeout),
        "MEMORY_URL": "",
        "LOG_LEVEL": "WARNING",
    }


async def bench_ttft(kafka: KafkaSettings, llm: LLMSettings, work: Path, threads: int) -> str:
    """The gateway and the responder run as their own processes (`tidings gateway`,
    `tidings responder`), as they are deployed; the bench process only sends requests."""
    env = stack_env(kafka, llm)
    gateway_port, responder_port = free_port(), free_port()
    gateway_env = {
        **env,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(gateway_port),
        # Every request comes from 127.0.0.1, faster than the per-caller default.
        "GATEWAY_RATE_PER_S": "1000",
        "GATEWAY_RATE_BURST": "1000",
        "GATEWAY_REQUEST_RATE_PER_S": "1000",
        "GATEWAY_REQUEST_BURST": "1000",
    }
    responder_env = {
        **env,
        "RESPONDER_HOST": "127.0.0.1",
        "RESPONDER_PORT": str(responder_port),
        "RESPONDER_GROUP_ID": f"{kafka.topic_prefix}responder",
    }
    await ensure_topics(kafka)
    direct: list[float] = []
    timed: list[float | None] = []  # the stack's, None for a withheld answer
    parts: dict[str, list[float]] = {}
    cli = [sys.executable, "-m", "tidings.cli.main"]
    with (
        process([*cli, "responder"], work / f"ttft-responder-{threads}.log", responder_env),
        process([*cli, "gateway"], work / f"ttft-gateway-{threads}.log", gateway_env),
    ):
        await asyncio.to_thread(wait_for_http, f"http://127.0.0.1:{gateway_port}/ready")
        await asyncio.to_thread(wait_for_http, f"http://127.0.0.1:{responder_port}/ready")
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}", timeout=120) as http,
            AsyncOpenAI(base_url=llm.openai_base_url, api_key="not-needed") as client,
        ):
            # The first answer waits for the responder to join its group, and pays the
            # connection set-up on both paths.
            await stack_ttft(http, "Warm up: say hi.")
            await direct_ttft(client, llm, "Warm up: say hi.")
            # Never the same prompt twice in a row: the model server reuses the longest
            # prefix of the prompt it evaluated last, so a repeated prompt skips its own
            # prompt processing. Each path asks every prompt in turn, and the two paths
            # take turns to go first; so every request finds only the system prompt
            # evaluated before it, on both paths alike.
            for round_ in range(ROUNDS):
                for direct_block in (True, False) if round_ % 2 else (False, True):
                    for prompt in PROMPTS:
                        if direct_block:
                            direct.append(await direct_ttft(client, llm, prompt))
                        else:
                            timed.append(await stack_ttft(http, prompt, parts))
    # Each stack request against the direct request of the same prompt in the same round:
    # the median of these paired differences is the stack's cost. The difference of the
    # two medians is shown too, but the model's own time to first token spreads over tens
    # of milliseconds (prompt lengths, the machine), and that difference moved by 5 ms
    # between two runs of the same code (7.8 and 13.2 ms) where the paired one did not.
    withheld = sum(1 for t in timed if t is None)
    direct = [d for t, d in zip(timed, direct, strict=True) if t is not None]
    stack = [t for t in timed if t is not None]
    diffs = [s - d for s, d in zip(stack, direct, strict=True)]
    paired = statistics.median(diffs) * 1000
    p50_diff = (statistics.median(stack) - statistics.median(direct)) * 1000
    # Per request, the stack's time outside the responder's own call to the model: the
    # two Kafka hops, the gateway, the responder's routing, SSE. It does not move with the
    # model server's speed, which swings from run to run on a shared machine.
    around = [s - m / 1000 for s, m in zip(stack, parts["first_token_ms"], strict=True)]
    rows = [
        "| path | requests | p50 TTFT (ms) | p95 TTFT (ms) |",
        "|---|---|---|---|",
        f"| llama.cpp server directly | {len(direct)} | {statistics.median(direct) * 1000:.1f} | "
        f"{pct(direct, 0.95) * 1000:.1f} |",
        f"| whole stack (POST /chat SSE) | {len(stack)} | {statistics.median(stack) * 1000:.1f} | "
        f"{pct(stack, 0.95) * 1000:.1f} |",
    ]
    # Issue 17's target on Apache Kafka (8 ms); Tansu is held to the earlier 15 ms.
    target = 8 if kafka.broker == "kafka" else 15
    verdict = "met" if paired <= target else "NOT met"
    broker = "Apache Kafka" if kafka.broker == "kafka" else "Tansu"
    if kafka.broker == "kafka":
        fetching = (
            f"Every fetch carries KAFKA_FETCH_MAX_WAIT_MS={kafka.fetch_max_wait_ms} ms, as "
            "compose and Kubernetes ship it: Kafka answers as soon as a record arrives."
        )
    else:
        fetching = (
            f"The responder and the gateway's fan-out long-poll for {kafka.fetch_busy_wait_ms} "
            "ms while messages flow and clients wait (KAFKA_FETCH_BUSY_WAIT_MS), "
            f"{kafka.fetch_max_wait_ms} ms otherwise (KAFKA_FETCH_MAX_WAIT_MS), because Tansu "
            "answers a fetch only when its wait expires; at Kafka's 500 ms each hop would wait "
            "~200 ms on Tansu."
        )
    return (
        f"#### {broker}, llama.cpp server with {threads} thread{'s' if threads > 1 else ''}\n\n"
        + "\n".join(rows)
        + f"\n\nStack minus model server, the median of the paired differences (each stack "
        f"request against the direct one of the same prompt and round): **{paired:.1f} ms** "
        f"(target <= {target} ms: {verdict}); their p95 {pct(diffs, 0.95) * 1000:.1f} ms; "
        f"the difference of the two p50s above {p50_diff:.1f} ms. Same {len(PROMPTS)} "
        f"prompts x {ROUNDS} rounds ({withheld} stack answers withheld by the guard, a "
        "sampled first sentence speaking for the store, left out with their direct pair), "
        f"SmolLM2-135M on llama.cpp ({threads} thread{'s' if threads > 1 else ''}), system "
        f"prompt + question; each path asks the {len(PROMPTS)} prompts in turn, the paths "
        "taking turns to go first, so no request repeats the prompt before it (the server "
        "would reuse its evaluation).\n\n"
        "Where the stack's time goes (p50, from the responder's `response.done` timings): "
        f"gateway -> Kafka -> responder {statistics.median(parts['queue_ms']):.1f} ms; "
        f"responder -> model first token {statistics.median(parts['first_token_ms']):.1f} ms; "
        "the rest of the stack figure is responder -> Kafka -> gateway -> SSE. Per request, "
        "the stack's time around the responder's model call (stack TTFT minus the responder's "
        f"own time to the model's first token): p50 {statistics.median(around) * 1000:.1f} ms, "
        f"p95 {pct(around, 0.95) * 1000:.1f} ms. {fetching}\n"
    )


async def throughput(
    kafka: KafkaSettings, count: int, env: dict[str, str], log: Path
) -> dict[str, float]:
    """Queue `count` messages (one session each), run one responder process, time the answers."""
    await ensure_topics(kafka)
    async with kafka_producer(kafka, name="bench") as producer:
        futures = []
        for i in range(count):
            message = UserMessage(
                message_id=uuid.uuid4().hex, session_id=f"load-{i}", text=f"Load test question {i}"
            )
            futures.append(
                await producer.send(
                    kafka.user_messages_topic, message.to_bytes(), key=message.session_id.encode()
                )
            )
        await asyncio.gather(*futures)
    full_env = echo_env(kafka, env)
    first_start: float | None = None
    ends: list[float] = []
    errors = 0
    async with kafka_consumer(
        kafka, kafka.model_responses_topic, group_id=None, name="bench-reader"
    ) as reader:
        with process([sys.executable, "-m", "tidings.cli.main", "responder"], log, full_env):
            deadline = time.monotonic() + 150
            while len(ends) < count and time.monotonic() < deadline:
                batches = await reader.getmany(timeout_ms=200, max_records=5000)
                now = time.monotonic()
                for records in batches.values():
                    for record in records:
                        event = parse_response_event(record.value or b"")
                        if first_start is None:
                            first_start = now
                        if isinstance(event, ResponseDone | ResponseError):
                            ends.append(now)
                            errors += isinstance(event, ResponseError)
    assert first_start is not None and ends, f"no answers; see {log}"
    span = max(ends) - first_start
    return {"answers": len(ends), "errors": errors, "seconds": span, "per_s": len(ends) / span}


def echo_env(kafka: KafkaSettings, env: dict[str, str]) -> dict[str, str]:
    """Environment of one `tidings responder` process on the echo backend."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_BROKER": kafka.broker,
        "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(kafka.topic_partitions),
        "RESPONDER_GROUP_ID": f"{kafka.topic_prefix}responder",
        "RESPONDER_HOST": "127.0.0.1",
        "RESPONDER_PORT": "0",
        "LLM_BACKEND": "echo",
        "MEMORY_URL": "",
        "LOG_FORMAT": "json",
        **env,
    }


async def cancel_latency(kafka: KafkaSettings, count: int, log: Path) -> list[float]:
    """Seconds from publishing a cancel to reading the answer's `cancelled` error, per answer.

    One responder process on the echo backend (10 s answers). Each message is cancelled as
    soon as its first delta is read back, the way a client's stop button reaches it: a
    `message.cancel.v1` on the message's partition, then the terminal event on
    model_responses. Measured here, not in a test, because the machines are shared.
    """
    await ensure_topics(kafka)
    env = echo_env(kafka, {"ECHO_TOKENS": "200", "ECHO_TOKENS_PER_S": "20"})
    latencies: list[float] = []
    async with (
        kafka_producer(kafka, name="bench") as producer,
        kafka_consumer(
            kafka, kafka.model_responses_topic, group_id=None, name="bench-reader"
        ) as reader,
    ):
        with process([sys.executable, "-m", "tidings.cli.main", "responder"], log, env):
            for i in range(count + 1):  # the first one waits for the group join: not counted
                message = UserMessage(
                    message_id=uuid.uuid4().hex, session_id=f"cancel-{i}", text="Tell me a story"
                )
                key = message.session_id.encode()
                await producer.send_and_wait(kafka.user_messages_topic, message.to_bytes(), key=key)
                await _until(reader, message.message_id, ResponseDelta, 90)
                request = CancelRequest(
                    message_id=message.message_id, session_id=message.session_id
                )
                asked = time.monotonic()
                await producer.send_and_wait(kafka.user_messages_topic, request.to_bytes(), key=key)
                ended = await _until(reader, message.message_id, ResponseError, 30)
                if i:
                    latencies.append(ended - asked)
    return latencies


async def _until(
    reader: AIOKafkaConsumer, message_id: str, kind: type[ResponseEvent], timeout_s: float
) -> float:
    """When an event of `kind` for `message_id` was read (a `done` instead fails the bench)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batches = await reader.getmany(timeout_ms=100)
        now = time.monotonic()
        for records in batches.values():
            for record in records:
                event = parse_response_event(record.value or b"")
                if event.message_id != message_id:
                    continue
                assert not isinstance(event, ResponseDone), "the answer ended uncancelled"
                if isinstance(event, kind):
                    return now
    raise AssertionError(f"no {kind.__name__} for {message_id} within {timeout_s} s")


def faq_quality() -> str:
    cases_path = ROOT / "tests" / "unit" / "responder" / "faq_labelled.yaml"
    cases = [Case(c["text"], c["intent"]) for c in yaml.safe_load(cases_path.read_text())]
    scores = evaluate(load_faq(), cases)
    misses = "; ".join(f"{t!r}: expected {e}, got {g}" for t, e, g in scores.mistakes)
    return (
        "### FAQ on the labelled phrasings\n\n"
        f"{scores.cases} phrasings (`tests/unit/responder/faq_labelled.yaml`): precision "
        f"**{scores.precision:.3f}** (target >= 0.95), recall **{scores.recall:.3f}**. "
        f"Mistakes: {misses or 'none'}.\n"
    )


@contextlib.asynccontextmanager
async def infrastructure(work: Path) -> AsyncIterator[tuple[dict[str, str], str]]:
    """Apache Kafka and Tansu side by side, and the model server: ({kind: bootstrap}, url)."""
    kafka_port, tansu_port, llm_port = free_port(), free_port(), free_port()
    node = KafkaNode(port=kafka_port, controller_port=free_port(), data_dir=work / "kafka")
    with (
        process(node.prepare(), work / "kafka.log"),
        process(tansu_command(tansu_port), work / "tansu.log"),
        process(llama_server_command(llm_port, threads=2), work / "llama.log"),
    ):
        wait_for_port(tansu_port, timeout_s=30)
        wait_for_port(kafka_port, timeout_s=90)
        base = f"http://127.0.0.1:{llm_port}/v1"
        wait_for_http(f"{base}/models", timeout_s=120)
        yield {"kafka": node.bootstrap, "tansu": f"127.0.0.1:{tansu_port}"}, base


def kafka_for(brokers: dict[str, str], partitions: int, broker: str = "kafka") -> KafkaSettings:
    return KafkaSettings(
        broker=broker,
        bootstrap_servers=brokers[broker],
        topic_prefix=f"b{uuid.uuid4().hex[:8]}-",
        topic_partitions=partitions,
    )


async def run(work: Path) -> str:
    async with infrastructure(work) as (brokers, llm_base):
        warm_s = await warm_broker(brokers["kafka"], work)
        llm = LLMSettings(
            llm_backend="openai",
            openai_base_url=llm_base,
            openai_model=LLAMA_MODEL_ALIAS,
            llm_max_tokens=8,
            llm_timeout=60,
        )
        one_core_port = free_port()
        with process(llama_server_command(one_core_port, threads=1), work / "llama-1-thread.log"):
            one_core = f"http://127.0.0.1:{one_core_port}/v1"
            await asyncio.to_thread(wait_for_http, f"{one_core}/models", timeout_s=120)
            llm_1 = llm.model_copy(update={"openai_base_url": one_core})
            ttft_1 = await bench_ttft(kafka_for(brokers, 3), llm_1, work, 1)
            ttft_1_tansu = await bench_ttft(kafka_for(brokers, 3, "tansu"), llm_1, work, 1)
        ttft_2 = await bench_ttft(kafka_for(brokers, 3), llm, work, 2)
        ttft = (
            "### (a) Time to first token: whole stack vs the model server directly\n\n"
            "The gateway and the responder run as their own processes (`tidings gateway`, "
            "`tidings responder`), on the same 2 cores as the broker, the model server and this "
            "client. Measured twice: with the model server on one thread, which leaves the other "
            "core to the stack, as when the model has hardware of its own (the deployments this "
            "targets); and on two threads, where every event the stack handles during the "
            "model's prompt processing takes a core from one of the model's two threads, which "
            "then waits for the other at each layer. On Apache Kafka (as production runs it) and, "
            "with the one-thread model, on Tansu, in the same run.\n\n"
            f"Apache Kafka is warmed up first, as in the gateway benchmark's (c): {PIPE_SESSIONS} "
            f"sessions x {PIPE_WARMUP_ROUNDS} rounds through a gateway and an echo responder "
            f"of their own on other topics ({warm_s:.0f} s), not measured. The JVM broker "
            "compiles its fetch, group and commit paths during its first 20-30 s of such load; "
            "a broker in production has long done so. Tansu has no JIT and is not warmed up.\n\n"
            + ttft_1
            + "\n"
            + ttft_1_tansu
            + "\n"
            + ttft_2
        )
        fast = await throughput(
            kafka_for(brokers, 6),
            3000,
            {"ECHO_TOKENS": "12", "RESPONDER_MAX_CONCURRENCY": "8", "LOG_LEVEL": "INFO"},
            work / "responder-fast.log",
        )
        slow = await throughput(
            kafka_for(brokers, 6),
            480,
            {
                "ECHO_TOKENS": "20",
                "ECHO_TOKENS_PER_S": "19",  # 19 gaps of 1/19 s: a 1 s generation
                "RESPONDER_MAX_CONCURRENCY": "32",
                "LOG_LEVEL": "INFO",
            },
            work / "responder-slow.log",
        )
        cancels = await cancel_latency(kafka_for(brokers, 6), 20, work / "responder-cancel.log")
    rows = [
        "| load | answers | errors | seconds | answers/s | target |",
        "|---|---|---|---|---|---|",
        f"| (b) echo, no delay, 12 tokens, concurrency 8 | {fast['answers']:.0f} | "
        f"{fast['errors']:.0f} | {fast['seconds']:.2f} | **{fast['per_s']:.0f}** | >= 400: "
        f"{'met' if fast['per_s'] >= 400 else 'NOT met'} |",
        f"| (c) echo, 1 s generations, concurrency 32 | {slow['answers']:.0f} | "
        f"{slow['errors']:.0f} | {slow['seconds']:.2f} | **{slow['per_s']:.1f}** | >= 28: "
        f"{'met' if slow['per_s'] >= 28 else 'NOT met'} |",
    ]
    return (
        ttft
        + "\n### Answers per second of one responder process (echo backend)\n\n"
        + "\n".join(rows)
        + "\n\nMessages queued up front (one session each, 6 partitions), then one "
        "`tidings responder` process started; timed from its first published event to its "
        "last terminal event, as read back from `model_responses`. JSON logs at INFO.\n\n"
        + cancel_report(cancels)
        + faq_quality()
    )


def cancel_report(latencies: list[float]) -> str:
    worst = max(latencies)
    return (
        "### Cancel: from the request to the answer's end\n\n"
        f"{len(latencies)} answers (echo backend, 10 s each), each cancelled as soon as its "
        "first delta was read back: a `message.cancel.v1` published on the message's "
        "partition, as the gateway's `POST /chat/{message_id}/cancel` does, to the answer's "
        "`error` with `reason: cancelled` read back from `model_responses`. p50 "
        f"**{statistics.median(latencies) * 1000:.0f} ms**, p95 "
        f"{pct(latencies, 0.95) * 1000:.0f} ms, max {worst * 1000:.0f} ms (target: within "
        f"1 s: {'met' if worst <= 1.0 else 'NOT met'}).\n\n"
    )


def main() -> str:
    configure_logging("bench", LogSettings(level="WARNING", format="console"))
    with tempfile.TemporaryDirectory(prefix="bench-responder-") as tmp:
        return asyncio.run(run(Path(tmp)))


if __name__ == "__main__":
    print(main())
