"""Operators configure the responder with RESPONDER_* and the seed's LLM_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tidings.common.settings import LLMBackend, LLMSettings
from tidings.responder.llm import (
    BackendSettings,
    LLMError,
    UnsupportedBackendError,
    create_backend,
    create_single,
    supported_backends,
)
from tidings.responder.llm.echo import EchoBackend
from tidings.responder.llm.ollama import OllamaBackend
from tidings.responder.llm.openai_compat import OpenAICompatBackend
from tidings.responder.service import ResponderService
from tidings.responder.settings import ResponderSettings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESPONDER_FLUSH_MS", "25")
    monkeypatch.setenv("RESPONDER_PORT", "0")
    monkeypatch.setenv("LLM_BACKEND", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://vllm:8000/v1")
    monkeypatch.setenv("LLM_TIMEOUT", "12.5")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    settings = ResponderSettings()
    assert settings.flush_ms == 25
    assert settings.port == 0
    assert settings.group_id == "responder"
    assert settings.llm.openai_base_url == "http://vllm:8000/v1"
    assert settings.llm.llm_timeout == 12.5
    assert settings.kafka.bootstrap_servers == "broker:9092"


def test_group_liveness_defaults_suit_kafka_and_a_heartbeat_must_fit_the_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = ResponderSettings()
    # 6 s: the lowest session timeout Apache Kafka accepts by default; 1 s heartbeats.
    assert (settings.session_timeout_ms, settings.heartbeat_interval_ms) == (6000, 1000)
    monkeypatch.setenv("RESPONDER_SESSION_TIMEOUT_MS", "3000")
    monkeypatch.setenv("RESPONDER_HEARTBEAT_INTERVAL_MS", "500")
    assert ResponderSettings().heartbeat_interval_ms == 500
    monkeypatch.setenv("RESPONDER_HEARTBEAT_INTERVAL_MS", "1500")
    with pytest.raises(ValidationError, match="RESPONDER_HEARTBEAT_INTERVAL_MS=1500"):
        ResponderSettings()


def test_a_missing_faq_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="RESPONDER_FAQ_PATH"):
        ResponderSettings(faq_path=tmp_path / "nope.yaml")


def test_the_openai_backend_is_built_from_llm_settings() -> None:
    chain = create_backend(LLMSettings(llm_backend=LLMBackend.OPENAI, openai_model="qwen"))
    assert [type(b) for b in chain.backends] == [OpenAICompatBackend]
    assert (chain.name, chain.model) == ("openai", "qwen")


def test_every_seed_backend_is_supported() -> None:
    assert supported_backends() == ["echo", "llamacpp", "ollama", "openai", "vcf_private_ai"]


def test_a_second_backend_and_the_breaker_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_BACKEND", "ollama")
    monkeypatch.setenv("OLLAMA_URL", "http://ollama:11434")
    monkeypatch.setenv("LLM_FALLBACK_BACKEND", "echo")
    monkeypatch.setenv("LLM_BREAKER_FAILURES", "5")
    monkeypatch.setenv("ECHO_TOKENS_PER_S", "20")
    settings = ResponderSettings()
    chain = create_backend(settings.llm, settings.backends)
    assert [type(b) for b in chain.backends] == [OllamaBackend, EchoBackend]
    assert settings.backends.llm_breaker_failures == 5
    assert settings.backends.echo_tokens_per_s == 20


def test_responder_settings_keep_the_seed_and_issue_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESPONDER_MAX_CONCURRENCY", "32")
    monkeypatch.setenv("RESPONDER_GRACE_S", "7")
    monkeypatch.setenv("ORDERS_API_URL", "http://orders:9000")
    monkeypatch.setenv("MEMORY_URL", "")
    settings = ResponderSettings()
    assert settings.max_concurrency == 32
    assert settings.grace_s == 7
    assert settings.orders_api_url == "http://orders:9000"
    assert not settings.memory.url
    assert ResponderSettings().max_concurrency == 32
    monkeypatch.delenv("RESPONDER_GRACE_S")
    monkeypatch.setenv("RESPONDER_SHUTDOWN_GRACE_S", "3")
    assert ResponderSettings().grace_s == 3


def test_vcf_private_ai_reads_its_token_file_per_request(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    extra = BackendSettings(
        vcf_model_endpoint="https://vcf.example/v1",
        vcf_model_name="llama-3-8b",
        vcf_token_path=token,
    )
    backend = create_single(LLMBackend.VCF_PRIVATE_AI, LLMSettings(), extra)
    assert isinstance(backend, OpenAICompatBackend)
    assert (backend.name, backend.model) == ("vcf_private_ai", "llama-3-8b")
    assert backend.bearer() == "first"
    token.write_text("rotated")
    assert backend.bearer() == "rotated"
    fixed = BackendSettings(
        vcf_model_endpoint="https://vcf.example/v1",
        vcf_model_name="m",
        vcf_api_token="from-env",
        vcf_token_path=tmp_path / "absent",
    )
    fixed_backend = create_single(LLMBackend.VCF_PRIVATE_AI, LLMSettings(), fixed)
    assert isinstance(fixed_backend, OpenAICompatBackend)
    assert fixed_backend.bearer() == "from-env"


def test_vcf_private_ai_without_endpoint_or_token_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedBackendError, match="VCF_MODEL_ENDPOINT"):
        create_single(LLMBackend.VCF_PRIVATE_AI, LLMSettings(), BackendSettings())
    no_token = BackendSettings(
        vcf_model_endpoint="https://vcf.example/v1",
        vcf_model_name="m",
        vcf_token_path=tmp_path / "absent",
    )
    with pytest.raises(UnsupportedBackendError, match="VCF_API_TOKEN"):
        create_single(LLMBackend.VCF_PRIVATE_AI, LLMSettings(), no_token)


def test_llamacpp_with_a_missing_model_file_fails_at_start_up(tmp_path: Path) -> None:
    extra = BackendSettings(llamacpp_model_path=tmp_path / "missing.gguf")
    with pytest.raises(LLMError, match="does not exist"):
        create_single(LLMBackend.LLAMACPP, LLMSettings(), extra)


def test_the_fallback_answer_comes_from_the_faq_file_unless_overridden(tmp_path: Path) -> None:
    assert ResponderService(ResponderSettings()).fallback_text == (
        "I'm not sure about that. Please contact support@bookstore.com for assistance."
    )
    path = tmp_path / "faq.yaml"
    path.write_text("fallback: Ask a human.\nintents:\n  - {id: a, answer: b, phrases: [c]}\n")
    assert ResponderService(ResponderSettings(faq_path=path)).fallback_text == "Ask a human."
    overridden = ResponderSettings(faq_path=path, fallback_text="Call us.")
    assert ResponderService(overridden).fallback_text == "Call us."
