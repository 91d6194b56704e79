"""Answer engine: time to first token of knowledge answers through the whole stack (issue 16).

Side by side in one run, alternating, on one stack of real processes (`tidings memory` with
the sample knowledge base in local Qdrant, `tidings responder`, `tidings gateway`, Apache Kafka and
the bundled SmolLM2 on llama.cpp):

(a) knowledge questions answered by quoting the knowledge base (RESPONDER_ANSWER_MODE=quote,
    the default),
(b) general requests answered by the LLM (the LLM path, now with the engine's planning and
    the sentence guard in front of it),
(c) the same knowledge questions with RESPONDER_ANSWER_MODE=generate: the LLM words the
    answer and the first sentence is sent once it passed the grounding check.

For each: client-side TTFT (POST /chat with `Accept: text/event-stream` -> first `token`),
p50 and p99, and the part the engine takes (retrieval, routing, checking): the responder's
`tidings_responder_engine_seconds` (planning) and, for quoted answers, the responder's own
start-to-first-text time, which is planning plus publishing.

Run: `.venv/bin/python tests/bench/run.py bench_engine`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_responder import infrastructure, kafka_for, pct, process

from tidings.cli.infra import LLAMA_MODEL_ALIAS, free_port, wait_for_http
from tidings.common.kafka import ensure_topics
from tidings.common.logging import configure_logging
from tidings.common.settings import KafkaSettings, LogSettings

TITLE = "Answer engine: time to first token of knowledge answers"

KNOWLEDGE = [
    "How much does express shipping cost?",
    "Do you ship to Canada?",
    "Where do orders ship from?",
    "Can I still change the delivery address?",
    "Can I pay with a Discover card?",
    "Do gift cards expire?",
    "How long do refunds take?",
    "Can I return an e-book?",
    "Do you sell used books?",
    "When is my card charged?",
]
GENERAL = [
    "Write one sentence about dragons.",
    "Name a famous novel about the sea.",
    "Why do people enjoy poetry?",
    "Describe a library in one sentence.",
    "What makes a good mystery story?",
    "Tell me a fun fact about paper.",
    "What is a haiku?",
    "Describe autumn in five words.",
    "Who might enjoy science fiction?",
    "Write a short greeting for a reader.",
]
ROUNDS = 5


async def ttft(http: httpx.AsyncClient, text: str) -> tuple[float, dict[str, Any]]:
    """Client time to the first `token`, and the `done` event."""
    started = time.perf_counter()
    first: float | None = None
    async with aconnect_sse(
        http, "POST", "/chat", json={"message": text}, headers={"accept": "text/event-stream"}
    ) as source:
        async for sse in source.aiter_sse():
            if sse.event == "token" and first is None:
                first = time.perf_counter() - started
            if sse.event in ("done", "error"):
                data: dict[str, Any] = json.loads(sse.data)
                assert sse.event == "done", data
                break
    assert first is not None, "no token event"
    return first, data


def engine_seconds(metrics_text: str) -> dict[str, tuple[float, float]]:
    """plan -> (sum, count) of tidings_responder_engine_seconds."""
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "tidings_responder_engine_seconds":
            continue
        for sample in family.samples:
            plan = sample.labels.get("plan", "")
            if sample.name.endswith("_sum"):
                found.setdefault(plan, [0.0, 0.0])[0] = sample.value
            elif sample.name.endswith("_count"):
                found.setdefault(plan, [0.0, 0.0])[1] = sample.value
    return {plan: (v[0], v[1]) for plan, v in found.items()}


def env_for(kafka: KafkaSettings, llm_base: str, memory_port: int, work: Path) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA_TOPIC_PARTITIONS": str(kafka.topic_partitions),
        "LLM_BACKEND": "openai",
        "OPENAI_BASE_URL": llm_base,
        "OPENAI_MODEL": LLAMA_MODEL_ALIAS,
        "LLM_MAX_TOKENS": "48",
        "LLM_TIMEOUT": "60",
        "MEMORY_URL": f"http://127.0.0.1:{memory_port}",
        "QDRANT_PATH": str(work / "qdrant"),
        "LOG_LEVEL": "WARNING",
    }


async def knowledge_loaded(memory_port: int) -> None:
    await asyncio.to_thread(wait_for_http, f"http://127.0.0.1:{memory_port}/ready", timeout_s=180)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{memory_port}", timeout=5) as c:
        for _ in range(600):
            with contextlib.suppress(httpx.TransportError):
                found = await c.get("/context", params={"session_id": "probe", "query": "ship"})
                if found.status_code == 200 and found.json()["knowledge"]:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError("the sample knowledge base did not load")


async def measure_mode(
    kafka: KafkaSettings, env: dict[str, str], gateway_port: int, mode: str, work: Path
) -> dict[str, Any]:
    """Start a responder in `mode`, ask the questions alternating, stop it."""
    responder_port = free_port()
    responder_env = {
        **env,
        "RESPONDER_HOST": "127.0.0.1",
        "RESPONDER_PORT": str(responder_port),
        "RESPONDER_GROUP_ID": f"{kafka.topic_prefix}responder",
        "RESPONDER_ANSWER_MODE": mode,
    }
    cli = [sys.executable, "-m", "tidings.cli.main"]
    out: dict[str, Any] = {"knowledge": [], "general": [], "responder_first": [], "sources": {}}
    with process([*cli, "responder"], work / f"responder-{mode}.log", responder_env):
        await asyncio.to_thread(wait_for_http, f"http://127.0.0.1:{responder_port}/ready")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{gateway_port}", timeout=120
        ) as http:
            await ttft(http, "Warm up: what is a haiku?")
            await ttft(http, "Warm up: do you ship to Mexico?")
            metrics = f"http://127.0.0.1:{responder_port}/metrics"
            before = engine_seconds((await http.get(metrics)).text)
            for round_ in range(ROUNDS):
                for index, (known, general) in enumerate(zip(KNOWLEDGE, GENERAL, strict=True)):
                    order = [("knowledge", known), ("general", general)]
                    if mode == "generate":
                        order = order[:1]  # the general path is the same in both modes
                    elif (index + round_) % 2:
                        order.reverse()
                    for kind, text in order:
                        seconds, done = await ttft(http, text)
                        out[kind].append(seconds)
                        key = f"{kind}:{done['source']}:{done.get('reason')}"
                        out["sources"][key] = out["sources"].get(key, 0) + 1
                        if kind == "knowledge":
                            out["responder_first"].append(done["timings"]["first_token_ms"])
            after = engine_seconds((await http.get(metrics)).text)
    out["engine"] = {
        plan: ((after[plan][0] - before.get(plan, (0, 0))[0]) * 1000)
        / max(1.0, after[plan][1] - before.get(plan, (0, 0))[1])
        for plan in after
    }
    return out


async def run(work: Path) -> str:
    async with infrastructure(work) as (brokers, llm_base):
        kafka = kafka_for(brokers, 3)  # Apache Kafka
        await ensure_topics(kafka)
        memory_port, gateway_port = free_port(), free_port()
        env = env_for(kafka, llm_base, memory_port, work)
        memory_env = {
            **env,
            "MEMORY_HOST": "127.0.0.1",
            "MEMORY_PORT": str(memory_port),
            "MEMORY_GROUP_ID": f"{kafka.topic_prefix}memory",
            "MEMORY_KNOWLEDGE_SAMPLE": "true",
        }
        gateway_env = {
            **env,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(gateway_port),
            "GATEWAY_RATE_PER_S": "1000",
            "GATEWAY_RATE_BURST": "1000",
            "GATEWAY_REQUEST_RATE_PER_S": "1000",
            "GATEWAY_REQUEST_BURST": "1000",
        }
        cli = [sys.executable, "-m", "tidings.cli.main"]
        with (
            process([*cli, "memory"], work / "memory.log", memory_env),
            process([*cli, "gateway"], work / "gateway.log", gateway_env),
        ):
            await asyncio.to_thread(wait_for_http, f"http://127.0.0.1:{gateway_port}/ready")
            await knowledge_loaded(memory_port)
            quote = await measure_mode(kafka, env, gateway_port, "quote", work)
            generate = await measure_mode(kafka, env, gateway_port, "generate", work)
    return report(quote, generate)


def _row(name: str, values: list[float], engine_ms: float | None) -> str:
    p50 = statistics.median(values) * 1000
    share = "" if engine_ms is None else f"{engine_ms:.1f} ms ({engine_ms / p50:.0%})"
    return f"| {name} | {len(values)} | **{p50:.1f}** | {pct(values, 0.99) * 1000:.1f} | {share} |"


def report(quote: dict[str, Any], generate: dict[str, Any]) -> str:
    engine_q = quote["engine"]
    engine_g = generate["engine"]
    rows = [
        "| path | answers | p50 TTFT (ms) | p99 TTFT (ms) | engine planning, mean (share of p50) |",
        "|---|---|---|---|---|",
        _row("(a) knowledge question, quoted (`quote`)", quote["knowledge"], engine_q.get("quote")),
        _row("(b) general request, LLM (SmolLM2-135M)", quote["general"], engine_q.get("general")),
        _row(
            "(c) knowledge question, generated and checked (`generate`)",
            generate["knowledge"],
            engine_g.get("generate"),
        ),
    ]
    sources = ", ".join(f"{k} {v}" for k, v in sorted({**quote["sources"]}.items()))
    gen_sources = ", ".join(f"{k} {v}" for k, v in sorted(generate["sources"].items()))
    return (
        "\n".join(rows) + "\n\n"
        f"{len(KNOWLEDGE)} knowledge questions and {len(GENERAL)} general requests x {ROUNDS} "
        "rounds, alternating, one at a time; (c) after (a) and (b), with the responder "
        "restarted in `generate` mode. Engine planning is "
        "`tidings_responder_engine_seconds` (retrieval with sentence evidence from the memory "
        "service, follow-up and FAQ routing, the decision); for quoted answers the responder's "
        "own time from taking the message to its first text was p50 "
        f"{statistics.median(quote['responder_first']):.1f} ms. The rest of a quoted answer's "
        "TTFT is the two Kafka hops, the gateway and SSE. In (c) the first token waits for the "
        "model's whole first sentence and its check.\n\n"
        f"Answers by kind:source:reason: {sources}; generate run: {gen_sources}.\n"
    )


def main() -> str:
    configure_logging("bench", LogSettings(level="WARNING", format="console"))
    with tempfile.TemporaryDirectory(prefix="tidings-bench-engine-") as tmp:
        return asyncio.run(run(Path(tmp)))


if __name__ == "__main__":
    print(main())
