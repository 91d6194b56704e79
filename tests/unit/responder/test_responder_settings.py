"""Operators configure the responder with RESPONDER_* and the seed's LLM_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tidings.common.settings import LLMBackend, LLMSettings
from tidings.responder.llm import UnsupportedBackendError, create_backend, supported_backends
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


def test_a_missing_faq_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="RESPONDER_FAQ_PATH"):
        ResponderSettings(faq_path=tmp_path / "nope.yaml")


def test_the_openai_backend_is_built_from_llm_settings() -> None:
    backend = create_backend(LLMSettings(llm_backend=LLMBackend.OPENAI, openai_model="qwen"))
    assert isinstance(backend, OpenAICompatBackend)
    assert (backend.name, backend.model) == ("openai", "qwen")


@pytest.mark.parametrize("name", ["ollama", "vcf_private_ai", "llamacpp", "echo"])
def test_backends_not_built_yet_fail_at_start_up_naming_what_works(name: str) -> None:
    settings = ResponderSettings(llm=LLMSettings(llm_backend=LLMBackend(name)))
    with pytest.raises(UnsupportedBackendError) as info:
        ResponderService(settings)
    assert f"LLM_BACKEND={name!r}" in str(info.value)
    assert "supported: openai" in str(info.value)
    assert supported_backends() == ["openai"]


def test_the_fallback_answer_comes_from_the_faq_file_unless_overridden(tmp_path: Path) -> None:
    assert ResponderService(ResponderSettings()).fallback_text == (
        "I'm not sure about that. Please contact support@bookstore.com for assistance."
    )
    path = tmp_path / "faq.yaml"
    path.write_text("fallback: Ask a human.\nintents:\n  - {id: a, answer: b, phrases: [c]}\n")
    assert ResponderService(ResponderSettings(faq_path=path)).fallback_text == "Ask a human."
    overridden = ResponderSettings(faq_path=path, fallback_text="Call us.")
    assert ResponderService(overridden).fallback_text == "Call us."
