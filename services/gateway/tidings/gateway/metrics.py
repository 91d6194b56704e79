"""The gateway's Prometheus metrics (served at GET /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from tidings.common.metrics import LATENCY_BUCKETS, metric_name

HTTP_REQUESTS = Counter(
    metric_name("gateway_http_requests"),
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
MESSAGES_ACCEPTED = Counter(
    metric_name("gateway_messages_accepted"),
    "Chat messages acknowledged by the broker and answered with 202.",
)
PUBLISH_FAILURES = Counter(
    metric_name("gateway_publish_failures"),
    "Chat messages the broker did not acknowledge in time (answered with 503).",
)
PUBLISH_SECONDS = Histogram(
    metric_name("gateway_publish_seconds"),
    "Time from sending a user message to the broker's acknowledgement.",
    buckets=LATENCY_BUCKETS,
)
OPEN_STREAMS = Gauge(
    metric_name("gateway_open_streams"),
    "SSE streams currently open on this replica.",
)
EVENTS_FANNED_OUT = Counter(
    metric_name("gateway_events_fanned_out"),
    "Answer events read from model_responses and handed to the replay buffer and streams.",
    ["event"],
)
INVALID_EVENTS = Counter(
    metric_name("gateway_invalid_events"),
    "Records on model_responses that are not valid answer events (skipped).",
)
STREAMS_DROPPED = Counter(
    metric_name("gateway_streams_dropped"),
    "SSE clients disconnected because they fell too far behind.",
)
ANSWER_GAPS = Counter(
    metric_name("gateway_answer_gaps"),
    "Answers a stream found chunks missing from (evicted, or lost by the broker); the client "
    "was sent the answer whole with its end instead.",
)
