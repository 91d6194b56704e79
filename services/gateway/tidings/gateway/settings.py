"""Gateway settings (`GATEWAY_` environment variables, plus the shared Kafka and log ones)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
        default=5.0,
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
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, title="Kafka")
    log: LogSettings = Field(default_factory=LogSettings, title="Logging")
