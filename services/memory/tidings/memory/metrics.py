"""Prometheus metrics of the memory worker (served on `/metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from tidings.common.metrics import metric_name

TURNS_STORED = Counter(
    metric_name("memory_turns_stored_total"),
    "Conversation turns embedded and written to Qdrant.",
    ["role"],
)
BATCH_SIZE = Histogram(
    metric_name("memory_batch_records"),
    "Kafka records per micro-batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
EMBED_SECONDS = Histogram(
    metric_name("memory_embed_seconds"),
    "Time to embed one micro-batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPSERT_SECONDS = Histogram(
    metric_name("memory_upsert_seconds"),
    "Time to write one micro-batch to Qdrant.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DEAD_LETTERED = Counter(
    metric_name("memory_dead_lettered_total"),
    "Records memory could not use, copied to the dead-letter topic.",
    ["topic"],
)
LAST_BATCH = Gauge(
    metric_name("memory_last_batch_timestamp_seconds"),
    "Unix time when the last micro-batch was committed.",
)
CONTEXT_SECONDS = Histogram(
    metric_name("memory_context_seconds"),
    "Time to assemble one GET /context answer (embedding the query included).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
