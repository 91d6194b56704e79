"""Prometheus helpers shared by the services.

Each service declares its own metrics in its `metrics.py`; this module holds what they share:
the exposition endpoint and a consistent naming prefix.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from starlette.requests import Request
from starlette.responses import Response

PREFIX = "tidings"

# Latency buckets (seconds) that resolve both a FAQ answer (~ms) and a slow LLM (~tens of s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)


def metric_name(name: str) -> str:
    """`tidings_<name>`."""
    return f"{PREFIX}_{name}"


FETCH_WAIT = Gauge(
    metric_name("kafka_fetch_wait_seconds"),
    "The fetch long-poll wait a consumer uses now (seconds): the busy one while traffic flows.",
    ["consumer"],
)


async def metrics_endpoint(_: Request) -> Response:
    """`GET /metrics` in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
