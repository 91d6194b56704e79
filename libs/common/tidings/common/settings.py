"""Shared settings.

The seed plans' environment names (`KAFKA_BOOTSTRAP_SERVERS`, `LLM_BACKEND`, `OLLAMA_URL`,
`OPENAI_BASE_URL`, `LLM_TIMEOUT`, `QDRANT_URL`, ...) are accepted exactly as users write them;
service-specific settings carry a `GATEWAY_`, `RESPONDER_` or `MEMORY_` prefix and live
next to their service.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class BrokerKind(StrEnum):
    """Which broker Tidings talks to (KAFKA_BROKER)."""

    KAFKA = "kafka"  # Apache Kafka, or any broker that behaves like it (production)
    TANSU = "tansu"  # the Tansu dev broker: turns on tidings.common.broker_compat


# Tansu's defaults where they differ from Kafka's (tidings.common.broker_compat says why).
TANSU_DEFAULTS: dict[str, Any] = {
    "enable_idempotence": False,
    "fetch_max_wait_ms": 10,
    "fetch_busy_wait_ms": 3,
}


class KafkaSettings(BaseSettings):
    """How to reach the broker and how the three topics are named and sized."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    broker: BrokerKind = Field(
        default=BrokerKind.KAFKA,
        title="Broker kind",
        description=(
            "`kafka` (Apache Kafka, Strimzi, any broker that behaves like it) or `tansu` (the "
            "dev broker `make run` falls back to without Java): `tansu` turns on the "
            "workarounds in tidings.common.broker_compat and Tansu's defaults for the fetch "
            "waits (10 and 3 ms) and the idempotent producer (off). `make run` and the tests "
            "set it when they start Tansu."
        ),
    )

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        title="Bootstrap servers",
        description="Comma-separated host:port list (KAFKA_BOOTSTRAP_SERVERS).",
    )
    topic_prefix: str = Field(
        default="",
        title="Topic prefix",
        description="Prepended to every topic name; lets several stacks share one broker.",
    )
    topic_partitions: int = Field(
        default=6,
        ge=1,
        title="Partitions per topic",
        description="Partitions created for each topic; the responder scales up to this count.",
    )
    replication_factor: int = Field(default=1, ge=1, title="Replication factor")
    enable_idempotence: bool = Field(
        default=True,
        title="Idempotent producer",
        description=(
            "A retried send is written once. Off by default with KAFKA_BROKER=tansu, which "
            "does not support it."
        ),
    )
    client_id: str = Field(default="tidings", title="Client id prefix")
    request_timeout_ms: int = Field(
        default=40_000,
        ge=1000,
        title="Request timeout (ms)",
        description="Must exceed the consumer session timeout: a JoinGroup may wait that long.",
    )
    linger_ms: int = Field(
        default=0,
        ge=0,
        le=1000,
        title="Producer linger (ms)",
        description=(
            "How long a producer holds a record to batch it with others. Every hop of a token "
            "pays it, so the default sends at once (measured: 2 ms linger -> 4.1 ms from POST "
            "to the broker's acknowledgement, 0 -> 2.2 ms); records that arrive while a request "
            "is in flight are batched anyway."
        ),
    )
    fetch_max_wait_ms: int = Field(
        default=500,
        ge=1,
        le=5000,
        title="Fetch long-poll wait (ms)",
        description=(
            "How long the broker may hold a consumer's fetch for new records (the gateway "
            "fan-out and the responder; the memory worker has its own). Apache Kafka answers "
            "as soon as a record arrives, so this only sets how often an idle consumer polls. "
            "Tansu holds every fetch for this whole wait, data or not: there it bounds the "
            "latency of every hop, hence its default of 10 (measured per hop, p50/p90: 10 ms "
            "-> 3.0/6.0 ms, 5 ms -> 2.2/3.9, 100 ms -> 27.5/47.5; docs/gateway.md)."
        ),
    )
    fetch_busy_wait_ms: int = Field(
        default=500,
        ge=1,
        le=5000,
        title="Fetch long-poll wait while busy (ms)",
        description=(
            "Tansu only (fetch pacing, tidings.common.broker_compat): the fetch wait of the "
            "responder while messages arrive and answers finish, and of the gateway's fan-out "
            "while clients wait for answers on the replica, for KAFKA_FETCH_BUSY_HOLD_S after "
            "the last (never above KAFKA_FETCH_MAX_WAIT_MS). On Tansu a shorter wait is a "
            "shorter hop (per hop p50: 3.1 ms at a 10 ms wait, 2.1 ms at 3); the CPU it costs "
            "is paid only during traffic. Apache Kafka needs no pacing: it is off there."
        ),
    )
    fetch_busy_hold_s: float = Field(
        default=10.0,
        ge=0,
        title="Busy fetch hold (s)",
        description=(
            "How long the busy wait lasts after the last traffic (the responder: a message or "
            "a finished answer; the gateway's fan-out: a stream opening or an event reaching one)."
        ),
    )

    @property
    def user_messages_topic(self) -> str:
        return f"{self.topic_prefix}user_messages"

    @property
    def model_responses_topic(self) -> str:
        return f"{self.topic_prefix}model_responses"

    @property
    def memory_events_topic(self) -> str:
        return f"{self.topic_prefix}memory_events"

    @property
    def topics(self) -> list[str]:
        """The three topics of the event contract, in creation order."""
        return [self.user_messages_topic, self.model_responses_topic, self.memory_events_topic]

    def dlq_topic(self, topic: str) -> str:
        """The dead-letter topic for `topic` (`<topic>.dlq`)."""
        return f"{topic}.dlq"

    @model_validator(mode="before")
    @classmethod
    def _broker_defaults(cls, data: Any) -> Any:
        """Tansu's defaults for what the user did not set (TANSU_DEFAULTS)."""
        if isinstance(data, dict) and str(data.get("broker", "")).lower() == BrokerKind.TANSU:
            return {**TANSU_DEFAULTS, **data}
        return data

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments shared by every aiokafka client."""
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "request_timeout_ms": self.request_timeout_ms,
        }


class LLMBackend(StrEnum):
    """Where the responder's LLM step sends its requests."""

    OPENAI = "openai"
    OLLAMA = "ollama"
    VCF_PRIVATE_AI = "vcf_private_ai"
    LLAMACPP = "llamacpp"
    ECHO = "echo"


class LLMSettings(BaseSettings):
    """The LLM backend, with the seed plans' variable names."""

    model_config = SettingsConfigDict(extra="ignore")

    llm_backend: LLMBackend = Field(
        default=LLMBackend.OPENAI,
        title="LLM backend",
        description="openai (vLLM, llama.cpp server, OpenAI, LM Studio), ollama, ...",
    )
    openai_base_url: str = Field(
        default="http://127.0.0.1:8080/v1", title="OpenAI-compatible base URL"
    )
    openai_api_key: SecretStr = Field(
        default=SecretStr("not-needed"),
        title="API key",
        description="Sent as a bearer token; local servers ignore it.",
    )
    openai_model: str = Field(default="smollm2-135m-instruct", title="Model name")
    ollama_url: str = Field(default="http://127.0.0.1:11434", title="Ollama URL")
    ollama_model: str = Field(default="llama3.2:1b", title="Ollama model")
    llm_timeout: float = Field(
        default=60.0, gt=0, title="LLM timeout (s)", description="Bound on one whole generation."
    )
    llm_max_tokens: int = Field(default=256, ge=1, title="Max tokens per answer")
    llm_temperature: float = Field(default=0.3, ge=0, le=2, title="Sampling temperature")
    llm_system_prompt: str = Field(
        default=(
            "You are Tidings, a friendly and concise assistant in an online bookstore's "
            "support chat. Answer in a few sentences. Never state the store's prices, "
            "discounts, policies, phone numbers or opening hours."
        ),
        title="System prompt",
        description=(
            "For general requests (chit-chat, 'write a haiku'); answers about the store come "
            "from the knowledge base, and the answer engine holds the model to making no "
            "claim about the store whatever this says (docs/responder.md)."
        ),
    )


class QdrantSettings(BaseSettings):
    """Qdrant: a server (`QDRANT_URL`) or local mode on disk (`QDRANT_PATH`)."""

    model_config = SettingsConfigDict(env_prefix="QDRANT_", extra="ignore")

    url: str | None = Field(default=None, title="Qdrant server URL")
    api_key: SecretStr | None = Field(default=None, title="Qdrant API key")
    path: Path = Field(
        default=Path(".tidings/qdrant"),
        title="Local storage path",
        description="Used when QDRANT_URL is not set (qdrant-client local mode).",
    )
    collection: str = Field(default="tidings_memory", title="Conversation memory collection")

    @field_validator("url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value


class LogSettings(BaseSettings):
    """Logging: JSON lines for machines, or a readable console format for `make run`."""

    model_config = SettingsConfigDict(env_prefix="LOG_", extra="ignore")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", title="Log level"
    )
    format: Literal["json", "console"] = Field(default="json", title="Log format")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
