"""Gateway settings (`GATEWAY_` environment variables, plus the shared Kafka and log ones)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.common.memory_api import MemoryApiSettings
from tidings.common.settings import KafkaSettings, LogSettings


class GatewaySettings(BaseSettings):
    """Everything the gateway process can be configured with."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    host: str = Field(
        default="0.0.0.0",
        title="Listen address",
        description="Interface the HTTP server binds to.",
    )
    port: int = Field(
        default=8000,
        ge=0,
        le=65535,
        title="Listen port",
        description="HTTP port; 0 picks a free one.",
    )
    max_message_bytes: int = Field(
        default=8192,
        ge=1,
        title="Maximum message size (bytes)",
        description="Longest accepted chat message, in UTF-8 bytes; longer ones get 413.",
    )
    max_metadata_bytes: int = Field(
        default=4096,
        ge=2,
        title="Maximum metadata size (bytes)",
        description="Largest accepted `metadata` object, measured as compact JSON.",
    )
    publish_timeout_s: float = Field(
        default=1.5,
        gt=0,
        title="Publish timeout (s)",
        description="How long POST /chat waits for the broker's acknowledgement before 503.",
    )
    replay_max_events: int = Field(
        default=2000,
        ge=1,
        title="Replay events per session",
        description="Answer events kept per session for clients that connect late.",
    )
    replay_max_sessions: int = Field(
        default=10_000,
        ge=1,
        title="Replay sessions",
        description="Sessions whose events are kept; the least recently active are dropped first.",
    )
    replay_max_age_s: float = Field(
        default=600.0,
        gt=0,
        title="Replay age (s)",
        description="Events older than this are dropped from the replay buffer.",
    )
    stream_queue_size: int = Field(
        default=10_000,
        ge=1,
        title="Stream backlog per client",
        description=(
            "Events waiting to be sent to one SSE client; a client that falls further behind "
            "is disconnected so it cannot hold memory, and its browser reconnects."
        ),
    )
    sse_ping_s: float = Field(
        default=15.0,
        gt=0,
        title="SSE heartbeat interval (s)",
        description="A comment line is sent this often so proxies keep idle streams open.",
    )
    sse_retry_ms: int = Field(
        default=2000,
        ge=0,
        title="SSE reconnect delay (ms)",
        description="The `retry:` hint telling browsers how soon to reconnect.",
    )
    ready_cache_s: float = Field(
        default=1.0,
        ge=0,
        title="Readiness probe cache (s)",
        description="How long a broker reachability check is reused by GET /ready.",
    )
    replay_max_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        title="Replay bytes per session",
        description="Approximate size (event JSON) of one session's buffered events.",
    )
    backfill_max_records: int = Field(
        default=5000,
        ge=0,
        title="Start-up read-back per partition (records)",
        description=(
            "A freshly started replica reads each partition from max(begin, end - this, first "
            "record younger than GATEWAY_REPLAY_MAX_AGE_S), so it can serve answers that began "
            "before it started."
        ),
    )
    answer_start_timeout_s: float = Field(
        default=120.0,
        gt=0,
        title="Answer start timeout (s)",
        description="A stream for one message ends with `error` reason `timeout` if no "
        "answer starts within this time.",
    )
    answer_idle_timeout_s: float = Field(
        default=120.0,
        gt=0,
        title="Answer idle timeout (s)",
        description="A stream whose answer began ends with `error` reason `timeout` when no "
        "further event of that answer arrives for this long (its end was lost: a broker "
        "without durable storage that restarted). Keep it above LLM_TIMEOUT.",
    )
    unavailable_after_s: float = Field(
        default=10.0,
        gt=0,
        title="Broker outage bound for streams (s)",
        description="Open streams end with `error` reason `unavailable` once the broker has "
        "been unreachable this long.",
    )
    broker_check_s: float = Field(
        default=1.0,
        gt=0,
        title="Broker check interval (s)",
        description="How often the broker watch probes the broker (readiness, fast 503, recovery).",
    )
    auth: Literal["none", "jwt"] = Field(
        default="none",
        title="Authentication",
        description="`none`: anyone with a session id can use it; `jwt`: bearer tokens required.",
    )
    jwt_secret: SecretStr | None = Field(
        default=None, title="JWT HS256 secret", description="Shared secret for HS256 tokens."
    )
    jwt_jwks_url: str | None = Field(
        default=None, title="JWKS URL", description="Where RS256/ES256 public keys are published."
    )
    jwt_audience: str | None = Field(
        default=None, title="JWT audience", description="Required `aud` claim."
    )
    jwt_issuer: str | None = Field(
        default=None, title="JWT issuer", description="Required `iss` claim."
    )
    jwt_leeway_s: float = Field(default=30.0, ge=0, title="JWT clock leeway (s)")
    jwt_jwks_cache_s: float = Field(
        default=300.0,
        gt=0,
        title="JWKS max age (s)",
        description="The key set is fetched again once this old: a revoked key stops working.",
    )
    jwt_jwks_min_refresh_s: float = Field(
        default=30.0,
        ge=0,
        title="JWKS refresh bound (s)",
        description="A token with an unknown key id fetches the set at most this often.",
    )
    ownership_max_sessions: int = Field(
        default=200_000,
        ge=1,
        title="Known session owners",
        description="Session -> subject entries kept (least recently used dropped first).",
    )
    ownership_wait_s: float = Field(
        default=2.0,
        ge=0,
        title="Owner lookup wait (s)",
        description="How long a request for an unknown session waits for the owner to be read.",
    )
    rate_per_s: float = Field(
        default=2.0,
        gt=0,
        title="Messages per second per subject",
        description="Token bucket refill rate for POST /chat and /v1/chat/completions.",
    )
    rate_burst: int = Field(
        default=10, ge=1, title="Message burst per subject", description="Token bucket size."
    )
    max_streams_per_subject: int = Field(
        default=20,
        ge=1,
        title="Open streams per subject",
        description="Concurrent SSE streams one subject (or anonymous IP) may hold.",
    )
    request_rate_per_s: float = Field(
        default=5.0,
        gt=0,
        title="Other requests per second per subject",
        description="Token bucket refill rate for stream opens, history pages and cancels.",
    )
    request_burst: int = Field(
        default=30, ge=1, title="Other request burst per subject", description="Bucket size."
    )
    memory_limit_bytes: int | None = Field(
        default=None,
        ge=16 * 1024 * 1024,
        title="Memory limit (bytes)",
        description="What the process-wide bounds are shares of; unset: the container's "
        "memory limit (cgroup), else the machine's RAM.",
    )
    max_open_streams: int | None = Field(
        default=None,
        ge=1,
        title="Open streams per process",
        description="SSE streams this replica holds at once, whoever opens them; more get "
        "503 `overloaded` with Retry-After. Unset: half the memory limit / 96 KiB.",
    )
    replay_max_total_bytes: int | None = Field(
        default=None,
        ge=1024,
        title="Replay bytes per process",
        description="All sessions' buffered answer events together (least recently active "
        "sessions dropped first). Unset: an eighth of the memory limit.",
    )
    shed_at_fraction: float = Field(
        default=0.85,
        gt=0,
        le=1,
        title="Load shedding point",
        description="Resident memory, as a share of the memory limit, from which new "
        "streams and messages get 503 `overloaded` with Retry-After.",
    )
    stream_queue_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        title="Stream backlog per client (bytes)",
        description="Event bytes waiting for one SSE client; beyond, it is disconnected.",
    )
    sse_send_timeout_s: float = Field(
        default=30.0,
        gt=0,
        title="SSE send timeout (s)",
        description="A client that takes longer than this to accept one event (or heartbeat) "
        "is disconnected, so a stalled reader cannot hold the stream's memory.",
    )
    hsts_max_age_s: int = Field(
        default=31_536_000,
        ge=0,
        title="HSTS max-age (s)",
        description="`Strict-Transport-Security` sent on answers to HTTPS requests (directly "
        "or through a trusted proxy's X-Forwarded-Proto); 0 sends none.",
    )
    max_body_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        title="Maximum body (bytes)",
        description="Largest request body read by /v1/chat/completions.",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        title="Trusted proxies",
        description=(
            "Comma-separated proxy addresses (or *) whose X-Forwarded-For is believed, so rate "
            "limits apply per user behind an ingress instead of to the ingress as one client."
        ),
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        title="CORS origins",
        description="Origins allowed to call the API from a browser (JSON list); none by default.",
    )
    docs: bool = Field(
        default=False,
        title="Interactive API docs",
        description=(
            "Serve Swagger UI at /docs and ReDoc at /redoc (they load scripts from a CDN). Off "
            "by default, so a deployment does not publish them; the schema itself stays at "
            "/openapi.json."
        ),
    )
    otel_telemetry: bool = Field(
        default=False,
        title="FastAPI OpenTelemetry telemetry",
        description=(
            "FastAPI's own OpenTelemetry spans, metrics and logs for every request, exported "
            "through the OpenTelemetry providers the process is given (none by default). Off, "
            "FastAPI skips them without asking the providers each request: 7 us less per "
            "POST /chat (docs/gateway.md). The gateway's Prometheus metrics and trace ids are "
            "independent of it."
        ),
    )
    models: list[str] = Field(
        default_factory=lambda: ["tidings"],
        title="Model names for /v1/models",
        description="Names OpenAI clients may send as `model`; all go to the same responder.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, title="Kafka")
    memory: MemoryApiSettings = Field(default_factory=MemoryApiSettings, title="Memory API")
    log: LogSettings = Field(default_factory=LogSettings, title="Logging")

    @model_validator(mode="after")
    def _jwt_needs_keys(self) -> GatewaySettings:
        if self.auth == "jwt" and self.jwt_secret is None and not self.jwt_jwks_url:
            raise ValueError("GATEWAY_AUTH=jwt needs GATEWAY_JWT_SECRET or GATEWAY_JWT_JWKS_URL")
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value()) < 32:
            raise ValueError("GATEWAY_JWT_SECRET must be at least 32 characters")
        return self
