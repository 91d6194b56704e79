"""Memory: worker throughput vs plain `model.encode`, `/context` latency, retrieval quality.

Starts an Apache Kafka broker on 127.0.0.1, publishes a fixed set of support-chat exchanges, and
runs the real memory service in this process (Kafka -> embeddings -> Qdrant local mode ->
`memory.stored`). The same texts are embedded with plain `model.encode` in batches of the
worker's batch size, before and after, in the same run, so the ratio compares like with
like on this shared machine. Then `/context` is timed over real HTTP, and the labelled
questions are searched in the sample knowledge base (hit@3, MRR).

Run: `.venv/bin/python tests/bench/run.py bench_memory`.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tidings.cli.apache_kafka import KafkaNode
from tidings.cli.infra import free_port, wait_for_port
from tidings.common.events import ResponseDone, UserMessage, new_id
from tidings.common.kafka import ensure_topics, kafka_consumer, kafka_producer
from tidings.common.logging import configure_logging
from tidings.common.settings import KafkaSettings, LogSettings, QdrantSettings
from tidings.memory.collection import ModelStamp
from tidings.memory.embedder import Embedder
from tidings.memory.knowledge.ingest import Ingestor, sample_source
from tidings.memory.knowledge.store import KnowledgeStore
from tidings.memory.service import MemoryService
from tidings.memory.settings import MemorySettings
from tidings.memory.store import open_qdrant

TITLE = "Memory: worker throughput, /context latency, retrieval quality"

QUESTIONS = Path(__file__).resolve().parent.parent / "integration" / "data"
QUESTIONS = QUESTIONS / "memory_kb_questions.json"
EXCHANGES = 300  # 600 turns
CONTEXT_REQUESTS = 200
BATCH_SIZE = 32


def labelled() -> list[tuple[str, str]]:
    data = json.loads(QUESTIONS.read_text())
    return [(item["q"], item["expected"]) for item in data["questions"]]


def corpus() -> list[tuple[str, str]]:
    """(question, answer) pairs of realistic lengths: customer questions, KB-sized answers."""
    source = sample_source()
    answers = [s.text for d in source.items() if hasattr(d, "sections") for s in d.sections]
    questions = [q for q, _ in labelled()]
    return [
        (f"{questions[i % len(questions)]} (order {10_000 + i})", answers[i % len(answers)])
        for i in range(EXCHANGES)
    ]


def plain_encode(embedder: Embedder, texts: list[str]) -> float:
    """Seconds to embed `texts` in batches of the worker's size, as the worker does."""
    started = time.perf_counter()
    for i in range(0, len(texts), BATCH_SIZE):
        embedder.embed(texts[i : i + BATCH_SIZE])
    return time.perf_counter() - started


async def publish(kafka: KafkaSettings, pairs: list[tuple[str, str]]) -> None:
    async with kafka_producer(kafka, name="bench") as producer:
        pending = []
        for i, (question, answer) in enumerate(pairs):
            session_id, message_id = f"s{i % 40}", new_id()
            ask = UserMessage(
                message_id=message_id, session_id=session_id, user=f"u{i % 10}", text=question
            )
            done = ResponseDone(
                message_id=message_id, session_id=session_id, attempt="a", text=answer, source="llm"
            )
            key = session_id.encode()
            pending.append(await producer.send(kafka.user_messages_topic, ask.to_bytes(), key=key))
            pending.append(
                await producer.send(kafka.model_responses_topic, done.to_bytes(), key=key)
            )
        await asyncio.gather(*pending)


async def worker_run(
    settings: MemorySettings, embedder: Embedder, turns: int
) -> tuple[float, int, dict[str, Any]]:
    """Steady-state seconds from the first stored batch to the last, and the turns counted."""
    kafka = settings.kafka
    async with (
        # The observer shares this process with the worker: it polls as seldom as the worker
        # does (the shared 5 ms wait would take CPU from the embedding model it measures).
        kafka_consumer(
            kafka,
            kafka.memory_events_topic,
            group_id=None,
            name="bench",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        ) as ev,
        MemoryService(settings, embedder=embedder) as service,
    ):
        first_at: float | None = None
        first_batch = 0
        seen = 0
        while seen < turns:
            fetched = await ev.getmany(timeout_ms=500)
            count = sum(len(records) for records in fetched.values())
            if not count:
                continue
            now = time.perf_counter()
            if first_at is None:
                first_at, first_batch = now, count
            seen += count
            last_at = now
        assert first_at is not None
        latency = await context_latency(service.port)
    return last_at - first_at, seen - first_batch, latency


async def context_latency(port: int) -> dict[str, Any]:
    questions = [q for q, _ in labelled()]
    timings: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for i in range(CONTEXT_REQUESTS):
            params = {"session_id": f"s{i % 40}", "query": questions[i % len(questions)]}
            params["user"] = f"u{i % 10}"
            started = time.perf_counter()
            response = await http.get("/context", params=params)
            timings.append(time.perf_counter() - started)
            response.raise_for_status()
            body = response.json()
    timings.sort()
    return {
        "p50_ms": 1000 * statistics.median(timings),
        "p99_ms": 1000 * timings[int(0.99 * (len(timings) - 1))],
        "example": {k: len(v) for k, v in body.items() if isinstance(v, list)},
    }


async def retrieval(embedder: Embedder, folder: Path) -> tuple[float, float, int]:
    questions = labelled()
    settings = MemorySettings()
    async with open_qdrant(QdrantSettings(path=folder)) as qdrant:
        knowledge = KnowledgeStore(qdrant, "kb")
        await knowledge.ensure_collection(ModelStamp(embedder.name, embedder.dimension))
        source = sample_source()
        await Ingestor(
            knowledge,
            embedder,
            max_chars=settings.chunk_max_chars,
            overlap_chars=settings.chunk_overlap_chars,
        ).ingest(source.root, source.items())
        vectors = embedder.embed([q for q, _ in questions])
        ranks: list[int | None] = []
        for (_, expected), vector in zip(questions, vectors, strict=True):
            titles = [c.title for c in await knowledge.search(vector, limit=10, min_score=-1)]
            ranks.append(titles.index(expected) + 1 if expected in titles else None)
    hit3 = sum(1 for r in ranks if r is not None and r <= 3) / len(ranks)
    mrr = sum(1 / r for r in ranks if r is not None) / len(ranks)
    return hit3, mrr, len(ranks)


async def measure(bootstrap: str, workdir: Path) -> str:
    embedder = Embedder.load()
    pairs = corpus()
    texts = [t for pair in pairs for t in pair]
    embedder.embed(texts[:BATCH_SIZE])  # warm-up, so neither side pays the first call
    kafka = KafkaSettings(
        bootstrap_servers=bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:8]}-", topic_partitions=3
    )
    await ensure_topics(kafka)
    await publish(kafka, pairs)
    settings = MemorySettings(
        host="127.0.0.1",
        port=0,
        group_id=f"{kafka.topic_prefix}memory",
        batch_size=BATCH_SIZE,
        knowledge_sample=True,
        kafka=kafka,
        qdrant=QdrantSettings(path=workdir / "qdrant", collection="bench_memory"),
    )
    # The machine is shared: the baseline runs three times around the worker run and its
    # fastest run counts, so noise can only make the ratio look worse, never better. The
    # worker fetches per topic partition, so its batches tend to hold questions or answers
    # of similar lengths (less padding); the baseline gets that advantage too: its later
    # runs embed all questions, then all answers.
    grouped = [q for q, _ in pairs] + [a for _, a in pairs]
    plain = [plain_encode(embedder, texts)]
    worker_s, worker_turns, latency = await worker_run(settings, embedder, len(texts))
    plain += [plain_encode(embedder, grouped), plain_encode(embedder, grouped)]
    plain_rate = len(texts) / min(plain)
    worker_rate = worker_turns / worker_s
    ratio = worker_rate / plain_rate
    hit3, mrr, n = await retrieval(embedder, workdir / "kb")
    runs = ", ".join(f"{p:.1f}" for p in plain)
    rows = [
        (
            f"plain `model.encode`, batches of {BATCH_SIZE}",
            f"{plain_rate:.0f} texts/s (fastest of runs taking {runs} s)",
        ),
        (
            "memory worker, Kafka -> embeddings -> Qdrant -> memory.stored",
            f"{worker_rate:.0f} turns/s ({worker_turns} turns in {worker_s:.2f} s)",
        ),
        (
            "**ratio worker / plain** (target >= 0.8)",
            f"**{ratio:.2f}**, target {_verdict(ratio >= 0.8)}",
        ),
        (
            f"`GET /context` p50 / p99, {CONTEXT_REQUESTS} sequential requests",
            f"{latency['p50_ms']:.1f} ms / {latency['p99_ms']:.1f} ms",
        ),
        (
            f"retrieval over the sample KB, {n} labelled questions",
            f"hit@3 {hit3:.3f}, MRR {mrr:.3f} (target hit@3 >= 0.9 {_verdict(hit3 >= 0.9)})",
        ),
    ]
    table = "\n".join(["| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])
    return f"""
Command: `.venv/bin/python tests/bench/run.py bench_memory`. {EXCHANGES} exchanges
({len(texts)} turns: a customer question and a knowledge-base-sized answer each) are
published to an Apache Kafka broker on 127.0.0.1 before the memory service starts; the service runs
in this process with Qdrant local mode on disk and `MEMORY_BATCH_SIZE={BATCH_SIZE}`. Worker
throughput is steady state: from the first `memory.stored` batch to the last (the consumer
group join before it is not counted). Plain encode embeds the same texts in batches of
{BATCH_SIZE} with the same all-MiniLM-L6-v2 on the CPU: once before the worker run in
publishing order, twice after it grouped by length (questions, then answers, as the worker's
per-partition batches tend to be); the fastest plain run is the baseline, which is
conservative on a shared machine.

{table}

Each `/context` call embeds the query (one encode of one text), reads the latest turns of
the session, searches related turns of the session or user and the knowledge base, with
{len(texts)} turns and the sample knowledge base stored; the last answer held
{latency["example"]} items. Latency is measured by the client over HTTP on 127.0.0.1.
"""


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> str:
    configure_logging("bench", LogSettings(level="WARNING", format="console"))
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        log = (workdir / "kafka.log").open("wb")
        node = KafkaNode(port=port, controller_port=free_port(), data_dir=workdir / "kafka")
        os.environ["KAFKA_BROKER"] = "kafka"
        broker = subprocess.Popen(node.prepare(), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, timeout_s=90)
            return asyncio.run(measure(f"127.0.0.1:{port}", workdir))
        finally:
            broker.terminate()
            try:
                broker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                broker.kill()
                broker.wait()
            log.close()


if __name__ == "__main__":
    print(main())
