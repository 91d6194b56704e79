"""The store's tools: answer latency of order status and recommendations through the stack.

One stack of real processes on 127.0.0.1: `tidings store` (SQLite, the sample data),
`tidings memory` (the embedding model, for recommendations by meaning), `tidings responder`
(LLM_BACKEND=echo: tool answers never reach a model), `tidings gateway`, and an Apache Kafka broker
(or KAFKA_BOOTSTRAP_SERVERS). Side by side, alternating, one request at a time:

(a) an order-status question with its proof (number + e-mail), a new session each;
(b) a recommendation request (category + price, "like X", a topic, best sellers);

each as client time to the first `token` and to `done` (POST /chat with
`Accept: text/event-stream`), p50 and p99; next to them the store's own answer to the same
lookups called directly (`POST /api/orders/lookup`, `GET /api/books`), and the responder's
`tidings_responder_tool_seconds` (the tool's part: store calls, the memory service's
embeddings and the ranking).

Run: `.venv/bin/python tests/bench/run.py bench_store`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from bench_engine import ttft  # noqa: E402
from bench_responder import pct, process  # noqa: E402

from tests.store_process import StoreProcess  # noqa: E402
from tidings.cli.apache_kafka import KafkaNode  # noqa: E402
from tidings.cli.infra import free_port, wait_for_http, wait_for_port  # noqa: E402

TITLE = "Store tools: order status and recommendations through the whole stack"
ROUNDS = 12
ORDERS = [  # (number, e-mail) of the sample data, every status
    ("531873", "alan@example.com"),
    ("199718", "ada@example.com"),
    ("810017", "ada@example.com"),
    ("219423", "katherine@example.com"),
    ("204184", "guest.reader@example.org"),
    ("344151", "sam.jones@example.net"),
]
REQUESTS = [
    "Recommend a mystery under $15",
    "something like Dune",
    "a cookbook for beginners",
    "what are your bestsellers?",
    "Can you suggest a romance e-book between $10 and $20?",
    "Do you have any books by Agatha Christie?",
]


async def ask(http: httpx.AsyncClient, text: str) -> tuple[float, float, dict[str, Any]]:
    """Client seconds to the first token and to `done`, and the `done` event."""
    started = time.perf_counter()
    first, done = await ttft(http, text)  # returns at `done`
    return first, time.perf_counter() - started, done


def tool_seconds(exposition: str) -> dict[str, tuple[float, float]]:
    """tool -> (sum, count) of tidings_responder_tool_seconds."""
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != "tidings_responder_tool_seconds":
            continue
        for sample in family.samples:
            tool = sample.labels.get("tool", "")
            if sample.name.endswith("_sum"):
                found.setdefault(tool, [0.0, 0.0])[0] += sample.value
            elif sample.name.endswith("_count"):
                found.setdefault(tool, [0.0, 0.0])[1] += sample.value
    return {tool: (v[0], v[1]) for tool, v in found.items()}


async def direct(store: StoreProcess) -> dict[str, list[float]]:
    """The store API called directly with the lookups the tools make."""
    out: dict[str, list[float]] = {"orders": [], "books": []}
    async with httpx.AsyncClient(base_url=store.url, timeout=10) as http:
        for _ in range(ROUNDS):
            for number, email in ORDERS:
                started = time.perf_counter()
                found = await http.post(
                    "/api/orders/lookup", json={"number": number, "email": email}
                )
                out["orders"].append(time.perf_counter() - started)
                assert found.status_code == 200, found.text
                started = time.perf_counter()
                books = await http.get(
                    "/api/books", params={"category": "Mystery & Thriller", "limit": 500}
                )
                out["books"].append(time.perf_counter() - started)
                assert books.status_code == 200
    return out


async def measure(gateway: str, responder_metrics: str) -> dict[str, Any]:
    out: dict[str, Any] = {"order_first": [], "order_done": [], "rec_first": [], "rec_done": []}
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        for text in ("Warm up: recommend a thriller", "Where is order #531873? alan@example.com"):
            await ask(http, text)
        before = tool_seconds((await http.get(responder_metrics)).text)
        for round_ in range(ROUNDS):
            for index, ((number, email), request) in enumerate(zip(ORDERS, REQUESTS, strict=True)):
                pair = [
                    ("order", f"Where is my order #{number}? My e-mail is {email}"),
                    ("rec", request),
                ]
                if (index + round_) % 2:
                    pair.reverse()
                for kind, text in pair:
                    first, total, done = await ask(http, text)
                    want = "order_status" if kind == "order" else "recommendations"
                    assert (done["source"], done["tool"]) == ("tool", want), done
                    out[f"{kind}_first"].append(first)
                    out[f"{kind}_done"].append(total)
        after = tool_seconds((await http.get(responder_metrics)).text)
    out["tool_ms"] = {
        tool: (after[tool][0] - before.get(tool, (0, 0))[0])
        * 1000
        / max(1.0, after[tool][1] - before.get(tool, (0, 0))[1])
        for tool in after
    }
    return out


async def run(work: Path) -> str:
    env = {**os.environ, "LOG_LEVEL": "WARNING", "LLM_BACKEND": "echo"}
    cli = [sys.executable, "-m", "tidings.cli.main"]
    broker_port = None
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        broker_port = free_port()
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{broker_port}"
        env["KAFKA_BROKER"] = "kafka"
    env["KAFKA_TOPIC_PREFIX"] = f"bstore{os.getpid()}-"
    memory_port, responder_port, gateway_port = free_port(), free_port(), free_port()
    store = StoreProcess(work)
    env.update(
        {
            "MEMORY_HOST": "127.0.0.1",
            "MEMORY_PORT": str(memory_port),
            "MEMORY_URL": f"http://127.0.0.1:{memory_port}",
            "MEMORY_KNOWLEDGE_SAMPLE": "false",
            "QDRANT_PATH": str(work / "qdrant"),
            "RESPONDER_HOST": "127.0.0.1",
            "RESPONDER_PORT": str(responder_port),
            "STORE_API_URL": store.url,
            "RESPONDER_ORDER_LOOKUP_LIMIT": "10000 per minute",
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(gateway_port),
            "GATEWAY_RATE_PER_S": "1000",
            "GATEWAY_RATE_BURST": "1000",
            "GATEWAY_REQUEST_RATE_PER_S": "1000",
            "GATEWAY_REQUEST_BURST": "1000",
        }
    )
    broker = None
    if broker_port:
        node = KafkaNode(port=broker_port, controller_port=free_port(), data_dir=work / "kafka")
        broker = process(node.prepare(), work / "kafka.log")
    try:
        if broker is not None:
            broker.__enter__()
            wait_for_port(broker_port or 0, timeout_s=90)
        with (
            store,
            process([*cli, "memory"], work / "memory.log", env),
            process([*cli, "responder"], work / "responder.log", env),
            process([*cli, "gateway"], work / "gateway.log", env),
        ):
            for port in (memory_port, responder_port, gateway_port):
                await asyncio.to_thread(
                    wait_for_http, f"http://127.0.0.1:{port}/ready", timeout_s=180
                )
            stack = await measure(
                f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{responder_port}/metrics"
            )
            alone = await direct(store)
    finally:
        if broker is not None:
            broker.__exit__(None, None, None)
    return report(stack, alone)


def _row(name: str, first: list[float], done: list[float], tool_ms: float | None) -> str:
    tool = "" if tool_ms is None else f"{tool_ms:.1f}"
    return (
        f"| {name} | {len(first)} | **{statistics.median(first) * 1000:.1f}** | "
        f"{pct(first, 0.99) * 1000:.1f} | {statistics.median(done) * 1000:.1f} | "
        f"{pct(done, 0.99) * 1000:.1f} | {tool} |"
    )


def report(stack: dict[str, Any], alone: dict[str, list[float]]) -> str:
    tool_ms = stack["tool_ms"]
    rows = [
        "| answer | answers | p50 TTFT (ms) | p99 TTFT (ms) | p50 done (ms) | p99 done (ms) | "
        "tool's part, mean (ms) |",
        "|---|---|---|---|---|---|---|",
        _row(
            "(a) order status (number + e-mail)",
            stack["order_first"],
            stack["order_done"],
            tool_ms.get("order_status"),
        ),
        _row(
            "(b) recommendation (3 books, ranked by meaning)",
            stack["rec_first"],
            stack["rec_done"],
            tool_ms.get("recommendations"),
        ),
    ]
    return (
        "\n".join(rows) + "\n\n"
        f"{len(ORDERS)} orders (one per status) and {len(REQUESTS)} recommendation requests x "
        f"{ROUNDS} rounds, alternating, one at a time, after one warm-up each (the catalogue's "
        "vectors are cached by then). The tool's part is "
        "`tidings_responder_tool_seconds`: (a) one store call, (b) the store's filtered "
        "candidates, the request's embedding from the memory service and the ranking. The "
        "store answers the same lookups directly in p50 "
        f"{statistics.median(alone['orders']) * 1000:.1f} ms (order, p99 "
        f"{pct(alone['orders'], 0.99) * 1000:.1f}) and "
        f"{statistics.median(alone['books']) * 1000:.1f} ms (the 24 Mystery & Thriller "
        f"books, p99 {pct(alone['books'], 0.99) * 1000:.1f}). The rest of the TTFT is the two "
        "Kafka hops, the gateway and SSE.\n"
    )


def main() -> str:
    with tempfile.TemporaryDirectory(prefix="tidings-bench-store-") as tmp:
        return asyncio.run(run(Path(tmp)))


if __name__ == "__main__":
    print(main())
