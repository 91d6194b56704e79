"""LLM backends behind one streaming interface."""

from tidings.responder.llm.base import (
    LLM_FAILED,
    LLM_TIMEOUT,
    LLM_UNAVAILABLE,
    Finished,
    LLMBackend,
    LLMError,
    LLMEvent,
    LLMRequest,
    TextChunk,
    build_messages,
)
from tidings.responder.llm.factory import (
    UnsupportedBackendError,
    create_backend,
    supported_backends,
)

__all__ = [
    "LLM_FAILED",
    "LLM_TIMEOUT",
    "LLM_UNAVAILABLE",
    "Finished",
    "LLMBackend",
    "LLMError",
    "LLMEvent",
    "LLMRequest",
    "TextChunk",
    "UnsupportedBackendError",
    "build_messages",
    "create_backend",
    "supported_backends",
]
