"""Responder settings (`RESPONDER_` prefix), composing the shared Kafka, LLM and log settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.common.settings import KafkaSettings, LLMSettings, LogSettings


class ResponderSettings(BaseSettings):
    """How the responder consumes `user_messages` and streams answers to `model_responses`."""

    model_config = SettingsConfigDict(env_prefix="RESPONDER_", extra="ignore")

    host: str = Field(default="0.0.0.0", title="Ops server host")
    port: int = Field(
        default=8002,
        ge=0,
        le=65535,
        title="Ops server port",
        description="Serves /health, /ready and /metrics; 0 picks a free port.",
    )
    faq_path: Path | None = Field(
        default=None,
        title="FAQ file",
        description="YAML file of FAQ intents; the packaged bookstore FAQ when unset.",
    )
    fallback_text: str | None = Field(
        default=None,
        title="Fallback answer",
        description=(
            "Sent when neither the FAQ nor the LLM can answer; defaults to the FAQ file's "
            "`fallback` (the bookstore's: \"I'm not sure about that. Please contact "
            'support@bookstore.com for assistance.").'
        ),
    )
    group_id: str = Field(default="responder", title="Consumer group")
    flush_ms: float = Field(
        default=40.0,
        gt=0,
        title="Delta coalescing window (ms)",
        description="LLM text is gathered this long before it is published as one delta.",
    )
    flush_chars: int = Field(
        default=48,
        ge=1,
        title="Delta size limit (characters)",
        description="A delta is published as soon as this much text is waiting.",
    )
    max_in_flight: int = Field(
        default=1,
        ge=1,
        title="Concurrent answers per partition",
        description=(
            "1 answers each partition strictly in order. Higher values answer different "
            "sessions of one partition concurrently; one session stays in order."
        ),
    )
    max_backlog: int = Field(
        default=64,
        ge=1,
        title="Backlog per partition before pausing",
        description="Fetching from a partition pauses while this many messages wait or run.",
    )
    shutdown_grace_s: float = Field(
        default=20.0,
        ge=0,
        title="Shutdown grace period (s)",
        description="How long in-flight answers may finish on SIGTERM before being abandoned.",
    )
    revoke_grace_s: float = Field(
        default=10.0,
        ge=0,
        title="Rebalance grace period (s)",
        description="How long answers of revoked partitions may finish during a rebalance.",
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        title="Attempts per message",
        description="Tries when publishing an answer fails with a retriable broker error.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, title="Kafka")
    llm: LLMSettings = Field(default_factory=LLMSettings, title="LLM")
    log: LogSettings = Field(default_factory=LogSettings, title="Logging")

    @model_validator(mode="after")
    def _faq_file_exists(self) -> ResponderSettings:
        if self.faq_path is not None and not self.faq_path.is_file():
            raise ValueError(f"RESPONDER_FAQ_PATH={self.faq_path} is not a readable file")
        return self
