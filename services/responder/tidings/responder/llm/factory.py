"""Build the backend named by LLM_BACKEND (and LLM_FALLBACK_BACKEND) from the settings."""

from __future__ import annotations

from pathlib import Path

from tidings.common.settings import LLMBackend as BackendName
from tidings.common.settings import LLMSettings
from tidings.responder.llm.base import LLMBackend
from tidings.responder.llm.chain import BackendChain
from tidings.responder.llm.echo import EchoBackend
from tidings.responder.llm.llamacpp import LlamaCppBackend
from tidings.responder.llm.ollama import OllamaBackend
from tidings.responder.llm.openai_compat import OpenAICompatBackend
from tidings.responder.llm.settings import BackendSettings


class UnsupportedBackendError(ValueError):
    """LLM_BACKEND names a backend that cannot run with the given settings."""


def supported_backends() -> list[str]:
    """The LLM_BACKEND values this version implements."""
    return sorted(name.value for name in BackendName)


def _token_reader(path: Path) -> str:
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise OSError(f"{path} is empty")
    return token


def create_single(
    name: BackendName, settings: LLMSettings, extra: BackendSettings | None = None
) -> LLMBackend:
    """One backend, without fallback or circuit breaker."""
    extra = extra or BackendSettings()
    if name is BackendName.OPENAI:
        return OpenAICompatBackend(settings)
    if name is BackendName.OLLAMA:
        return OllamaBackend(settings)
    if name is BackendName.ECHO:
        return EchoBackend(
            settings,
            first_token_s=extra.echo_first_token_ms / 1000,
            tokens_per_s=extra.echo_tokens_per_s,
            tokens=extra.echo_tokens,
        )
    if name is BackendName.LLAMACPP:
        return LlamaCppBackend(
            settings,
            model_path=extra.llamacpp_model_path,
            n_ctx=extra.llamacpp_n_ctx,
            threads=extra.llamacpp_threads,
        )
    if name is BackendName.VCF_PRIVATE_AI:
        if not extra.vcf_model_endpoint or not extra.vcf_model_name:
            raise UnsupportedBackendError(
                "LLM_BACKEND='vcf_private_ai' needs VCF_MODEL_ENDPOINT and VCF_MODEL_NAME"
            )
        secret = extra.vcf_api_token
        path = extra.vcf_token_path
        if secret is None and not path.is_file():
            raise UnsupportedBackendError(
                f"LLM_BACKEND='vcf_private_ai' needs VCF_API_TOKEN or a token file at {path}"
            )
        return OpenAICompatBackend(
            settings,
            name=BackendName.VCF_PRIVATE_AI.value,
            base_url=extra.vcf_model_endpoint,
            model=extra.vcf_model_name,
            token=(lambda: secret.get_secret_value()) if secret else (lambda: _token_reader(path)),
        )
    raise UnsupportedBackendError(
        f"LLM_BACKEND={name.value!r} is not supported; supported: {', '.join(supported_backends())}"
    )


def create_backend(settings: LLMSettings, extra: BackendSettings | None = None) -> BackendChain:
    """LLM_BACKEND, then LLM_FALLBACK_BACKEND if set, each behind its circuit breaker."""
    extra = extra or BackendSettings()
    backends = [create_single(settings.llm_backend, settings, extra)]
    second = extra.llm_fallback_backend
    if second is not None and second is not settings.llm_backend:
        backends.append(create_single(second, settings, extra))
    return BackendChain(
        backends,
        timeout_s=settings.llm_timeout,
        breaker_failures=extra.llm_breaker_failures,
        breaker_reset_s=extra.llm_breaker_reset_s,
    )
