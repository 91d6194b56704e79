"""Choose the LLM backend named by LLM_BACKEND."""

from __future__ import annotations

from collections.abc import Callable

from tidings.common.settings import LLMBackend as BackendName
from tidings.common.settings import LLMSettings
from tidings.responder.llm.base import LLMBackend
from tidings.responder.llm.openai_compat import OpenAICompatBackend

_BACKENDS: dict[BackendName, Callable[[LLMSettings], LLMBackend]] = {
    BackendName.OPENAI: OpenAICompatBackend,
}


class UnsupportedBackendError(ValueError):
    """LLM_BACKEND names a backend this version cannot run."""


def supported_backends() -> list[str]:
    """The LLM_BACKEND values this version implements."""
    return sorted(name.value for name in _BACKENDS)


def create_backend(settings: LLMSettings) -> LLMBackend:
    """The backend for `settings.llm_backend`; fails at start-up when it is not implemented."""
    factory = _BACKENDS.get(settings.llm_backend)
    if factory is None:
        raise UnsupportedBackendError(
            f"LLM_BACKEND={settings.llm_backend.value!r} is not supported by this version of "
            f"the responder; supported: {', '.join(supported_backends())}. For an "
            "OpenAI-compatible server (vLLM, llama.cpp, LM Studio) set LLM_BACKEND=openai "
            "and OPENAI_BASE_URL."
        )
    return factory(settings)
