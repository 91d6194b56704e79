"""Prometheus metrics of the responder (exposed on `/metrics` of its ops server)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from tidings.common.metrics import LATENCY_BUCKETS, metric_name

ANSWERS = Counter(
    metric_name("responder_answers_total"),
    "Answers completed (response.done), by source (tool, faq, llm, fallback) and LLM backend "
    "(`none` when no LLM answered).",
    ["source", "backend"],
)
ERRORS = Counter(
    metric_name("responder_errors_total"),
    "Answers that ended with response.error, by code.",
    ["code"],
)
LLM_FAILURES = Counter(
    metric_name("responder_llm_failures_total"),
    "LLM generations that failed, by code, including those rescued by the fallback answer.",
    ["code"],
)
FIRST_TOKEN = Histogram(
    metric_name("responder_first_token_seconds"),
    "From the start of work on a message to its first answer text, by source.",
    ["source"],
    buckets=LATENCY_BUCKETS,
)
ANSWER_TIME = Histogram(
    metric_name("responder_answer_seconds"),
    "From the start of work on a message to its terminal event, by source.",
    ["source"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_TIME = Histogram(
    metric_name("responder_queue_seconds"),
    "From the user message's timestamp to the start of work on it.",
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    metric_name("responder_in_flight"),
    "Messages being answered right now (holding one of RESPONDER_MAX_CONCURRENCY slots).",
)
BACKLOG = Gauge(
    metric_name("responder_backlog"),
    "Messages fetched and waiting or running, over all assigned partitions.",
)
DEAD_LETTERED = Counter(
    metric_name("responder_dead_lettered_total"),
    "user_messages records sent to the dead-letter topic.",
)
EXPIRED = Counter(
    metric_name("responder_messages_expired"),
    "User messages dropped unanswered: older than RESPONDER_MAX_MESSAGE_AGE_S when their turn "
    "came.",
)
ABANDONED = Counter(
    metric_name("responder_abandoned_total"),
    "Answers abandoned uncommitted (rebalance or shutdown); they are redelivered.",
)
LLM_TOKENS = Counter(
    metric_name("responder_llm_tokens_total"),
    "Tokens reported by the LLM backend, by kind (prompt, completion).",
    ["kind"],
)
LLM_CHUNKS = Counter(
    metric_name("responder_llm_chunks_total"),
    "Text chunks received from the LLM backend.",
)
DELTAS = Counter(
    metric_name("responder_deltas_total"),
    "response.delta events published (after coalescing).",
)
TOKENS_PER_SECOND = Histogram(
    metric_name("responder_llm_tokens_per_second"),
    "Completion tokens per second of LLM answers (after the first token), by backend.",
    ["backend"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
BACKEND_ERRORS = Counter(
    metric_name("responder_llm_backend_errors_total"),
    "Failed calls to an LLM backend (circuit_open: skipped by its breaker), by backend and code.",
    ["backend", "code"],
)
CIRCUIT_STATE = Gauge(
    metric_name("responder_llm_circuit_state"),
    "Circuit breaker of each LLM backend: 1 for its current state (closed, open, half_open), "
    "0 for the others.",
    ["backend", "state"],
)
CONSUMER_LAG = Gauge(
    metric_name("responder_consumer_lag"),
    "user_messages records not fetched yet (highwater - position), by partition.",
    ["partition"],
)
CANCELLED = Counter(
    metric_name("responder_cancelled_total"),
    "Answers stopped by a cancel request.",
)
TOOL_CALLS = Counter(
    metric_name("responder_tool_calls_total"),
    "Tool answers, by tool (order_status, recommendations) and outcome (found, not_found, "
    "asked, rate_limited, unavailable, none).",
    ["tool", "outcome"],
)
TOOL_SECONDS = Histogram(
    metric_name("responder_tool_seconds"),
    "How long a tool took to answer (its calls to the store and to memory), by tool and outcome.",
    ["tool", "outcome"],
    buckets=LATENCY_BUCKETS,
)
FAQ_RELOADS = Counter(
    metric_name("responder_faq_reloads_total"),
    "FAQ reloads on SIGHUP, by outcome (ok, invalid).",
    ["outcome"],
)
CONTEXT_DROPPED = Counter(
    metric_name("responder_context_dropped_total"),
    "Turns and knowledge chunks left out of a prompt to fit the context window, by kind.",
    ["kind"],
)
ENGINE_SECONDS = Histogram(
    metric_name("responder_engine_seconds"),
    "Time the answer engine takes to plan an answer (retrieval, routing), by plan.",
    ["plan"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
)
UNANSWERED = Counter(
    metric_name("responder_unanswered_total"),
    "Questions about the store the knowledge base does not answer (honest unknowns).",
)
UNSURE = Counter(
    metric_name("responder_unsure_total"),
    "Knowledge answers given with the way to ask a person, their evidence being close to the "
    "bar (RESPONDER_EVIDENCE_SURE_MARGIN).",
)
CHECK_FAILED = Counter(
    metric_name("responder_check_failed_total"),
    "Generated answers stopped by the grounding check, by plan (generate, general).",
    ["plan"],
)
