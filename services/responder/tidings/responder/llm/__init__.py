"""LLM backends behind one streaming interface."""

from tidings.responder.llm.base import (
    LLM_FAILED,
    LLM_TIMEOUT,
    LLM_UNAVAILABLE,
    ChatMessage,
    Finished,
    LLMBackend,
    LLMError,
    LLMEvent,
    LLMRequest,
    TextChunk,
    build_messages,
)
from tidings.responder.llm.chain import BackendChain
from tidings.responder.llm.factory import (
    UnsupportedBackendError,
    create_backend,
    create_single,
    supported_backends,
)
from tidings.responder.llm.settings import BackendSettings

__all__ = [
    "LLM_FAILED",
    "LLM_TIMEOUT",
    "LLM_UNAVAILABLE",
    "BackendChain",
    "BackendSettings",
    "ChatMessage",
    "Finished",
    "LLMBackend",
    "LLMError",
    "LLMEvent",
    "LLMRequest",
    "TextChunk",
    "UnsupportedBackendError",
    "build_messages",
    "create_backend",
    "create_single",
    "supported_backends",
]
