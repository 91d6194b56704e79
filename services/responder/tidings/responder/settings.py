"""Responder settings (`RESPONDER_` prefix), composing the shared Kafka, LLM and log settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from limits import parse
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.common.memory_api import MemoryApiSettings
from tidings.common.settings import KafkaSettings, LLMSettings, LogSettings
from tidings.responder.llm.settings import BackendSettings


class ResponderSettings(BaseSettings):
    """How the responder consumes `user_messages` and streams answers to `model_responses`."""

    model_config = SettingsConfigDict(
        env_prefix="RESPONDER_", extra="ignore", populate_by_name=True
    )

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
    flush_first: bool = Field(
        default=True,
        title="Send the first text at once",
        description="The first delta of an answer is not held back for coalescing (TTFT).",
    )
    start_grace_ms: float = Field(
        default=250.0,
        ge=0,
        title="Wait of a model answer's start for its first text (ms)",
        description=(
            "`response.start` of an LLM answer is published with its first text, or after "
            "this long if the model has not produced any by then; 0 publishes it before the "
            "model is asked. Keep it far below GATEWAY_ANSWER_START_TIMEOUT_S."
        ),
    )
    max_concurrency: int = Field(
        default=8,
        ge=1,
        title="Concurrent answers",
        description=(
            "Answers generated at the same time by this process, over all its partitions. "
            "Messages of one session are always answered one after the other."
        ),
    )
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        title="Concurrent answers per partition",
        description=(
            "Cap per partition (1 answers each partition strictly in offset order); unset: "
            "only RESPONDER_MAX_CONCURRENCY limits."
        ),
    )
    max_message_age_s: float = Field(
        default=300.0,
        ge=0,
        title="Oldest message answered (s)",
        description=(
            "A message older than this when its turn comes is dropped unanswered and counted "
            "(tidings_responder_messages_expired_total): after a flood, nobody waits for "
            "those answers any more (the gateway gives up after GATEWAY_ANSWER_START_TIMEOUT_S)."
            " 0 answers messages however old."
        ),
    )
    max_backlog: int = Field(
        default=64,
        ge=1,
        title="Backlog per partition before pausing",
        description="Fetching from a partition pauses while this many messages wait or run.",
    )
    grace_s: float = Field(
        default=20.0,
        ge=0,
        validation_alias=AliasChoices("RESPONDER_GRACE_S", "RESPONDER_SHUTDOWN_GRACE_S"),
        title="Shutdown grace period (s)",
        description=(
            "RESPONDER_GRACE_S: on SIGTERM, how long in-flight answers may finish before they "
            "are abandoned (uncommitted, so redelivered)."
        ),
    )
    session_timeout_ms: int = Field(
        default=6_000,
        ge=1000,
        title="Consumer session timeout (ms)",
        description=(
            "How soon the group notices a responder that died without leaving (kill -9) and "
            "gives its partitions to the others. 6000 is the lowest Apache Kafka accepts by "
            "default (the broker's group.min.session.timeout.ms); Tansu has no minimum."
        ),
    )
    heartbeat_interval_ms: int = Field(
        default=1_000,
        ge=100,
        title="Consumer heartbeat interval (ms)",
        description=(
            "How often the consumer tells the group it is alive; it also bounds how long a "
            "replica takes to notice a rebalance (another replica died, left or joined). "
            "Must stay below a third of RESPONDER_SESSION_TIMEOUT_MS."
        ),
    )
    revoke_grace_s: float = Field(
        default=10.0,
        ge=0,
        title="Grace for answers of a lost log (s)",
        description=(
            "How long the answers in flight of a partition whose log started over (a broker "
            "that lost its log) may finish. A rebalance does not wait for answers: they go on "
            "through it, or are cut off when their partition moves to another member."
        ),
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        title="Attempts per message",
        description="Tries when publishing an answer fails with a retriable broker error.",
    )
    store_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("STORE_API_URL", "store_api_url"),
        title="Store API URL",
        description=(
            "STORE_API_URL: base URL of the store's system (docs/store-api.yaml; `tidings "
            "store` serves it): the catalogue for recommendations, and orders unless "
            "ORDERS_API_URL says otherwise. Unset (and no ORDERS_API_URL) disables the tools."
        ),
    )
    orders_api_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ORDERS_API_URL", "orders_api_url"),
        title="Orders API URL",
        description=(
            "ORDERS_API_URL: base URL of the order lookups (POST /api/orders/lookup of the "
            "store contract); STORE_API_URL when unset."
        ),
    )
    store_api_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STORE_API_TOKEN", "store_api_token"),
        title="Store API credential",
        description="STORE_API_TOKEN: sent as `Authorization: Bearer <token>` to the store.",
    )
    order_lookup_limit: str = Field(
        default="5 per 10 minutes",
        title="Order lookups allowed",
        description=(
            "RESPONDER_ORDER_LOOKUP_LIMIT: lookups per session and per signed-in user in a "
            "moving window (`limits` notation: '5 per 10 minutes', '20/hour')."
        ),
    )
    recommend_candidates: int = Field(
        default=500,
        ge=1,
        le=500,
        title="Books ranked per recommendation",
        description="The store's matching books (best sellers first) ranked by meaning.",
    )
    orders_timeout_s: float = Field(
        default=3.0,
        gt=0,
        validation_alias=AliasChoices("ORDERS_API_TIMEOUT_S", "orders_timeout_s"),
        title="Orders API timeout (s)",
    )
    context_turns: int = Field(
        default=8,
        ge=0,
        title="Recent turns in the prompt",
        description="At most this many recent turns of the session go into an LLM prompt.",
    )
    context_chunks: int = Field(
        default=4,
        ge=0,
        title="Knowledge chunks in the prompt",
        description="At most this many knowledge-base chunks go into an LLM prompt.",
    )
    answer_mode: Literal["quote", "generate"] = Field(
        default="quote",
        title="Answers from the knowledge base",
        description=(
            "`quote`: the knowledge base's own sentences, cited (the default: right with any "
            "model, and the only safe choice with the bundled SmolLM2-135M); `generate`: "
            "the LLM words the answer from those sentences, every sentence checked against "
            "them before it is sent, and the sentences quoted when a check fails (for a "
            "capable model: Ollama, vLLM)."
        ),
    )
    faq_min_similarity: float = Field(
        default=0.8,
        ge=0,
        le=1,
        title="FAQ similarity",
        description="A canned answer needs a message this close (cosine) to one of its questions.",
    )
    evidence_min_similarity: float = Field(
        default=0.4,
        ge=0,
        le=1,
        title="Evidence similarity",
        description=(
            "The knowledge base answers a question when a sentence is this close (cosine); "
            "each question word the retrieved knowledge never uses adds "
            "RESPONDER_FOREIGN_WORD_PENALTY."
        ),
    )
    foreign_word_penalty: float = Field(
        default=0.05, ge=0, le=1, title="Foreign word penalty", description="See above."
    )
    evidence_sure_margin: float = Field(
        default=0.2,
        ge=0,
        le=1,
        title="Evidence sure margin",
        description=(
            "A knowledge answer whose best sentence clears RESPONDER_EVIDENCE_MIN_SIMILARITY "
            "(with its word bonus and penalty) by less than this ends with the FAQ fallback's "
            "contact: 'If this does not answer your question, please contact ...'. 0 never "
            "adds it."
        ),
    )
    evidence_chunks: int = Field(
        default=10,
        ge=1,
        le=50,
        title="Evidence chunks",
        description=(
            "Knowledge chunks the memory service retrieves by meaning for each question; the "
            "engine then ranks their sentences by meaning and by the question's words."
        ),
    )
    memory_retry_s: float = Field(
        default=5.0,
        gt=0,
        title="Memory retry pause (s)",
        description="While the memory service is down it is asked again only this often.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, title="Kafka")
    llm: LLMSettings = Field(default_factory=LLMSettings, title="LLM")
    backends: BackendSettings = Field(
        default_factory=BackendSettings, title="LLM backends (fallback, breaker, VCF, echo, ...)"
    )
    memory: MemoryApiSettings = Field(default_factory=MemoryApiSettings, title="Memory API")
    log: LogSettings = Field(default_factory=LogSettings, title="Logging")

    @field_validator("orders_api_url", "store_api_url", "store_api_token", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("order_lookup_limit")
    @classmethod
    def _is_a_limit(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like '5 per 10 minutes': {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> ResponderSettings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                f"RESPONDER_HEARTBEAT_INTERVAL_MS={self.heartbeat_interval_ms} must be at most a "
                f"third of RESPONDER_SESSION_TIMEOUT_MS={self.session_timeout_ms}, or one late "
                "heartbeat expires the member"
            )
        return self

    @model_validator(mode="after")
    def _faq_file_exists(self) -> ResponderSettings:
        if self.faq_path is not None and not self.faq_path.is_file():
            raise ValueError(f"RESPONDER_FAQ_PATH={self.faq_path} is not a readable file")
        return self
