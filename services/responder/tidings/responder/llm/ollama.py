"""Ollama's native chat API: `POST {OLLAMA_URL}/api/chat` streaming NDJSON.

Each line is a JSON object; text arrives in `message.content`, the last object has
`done: true` with token counts (`prompt_eval_count`, `eval_count`). A failure is an
`{"error": "..."}` object, either as the body of an HTTP error or as a line mid-stream.
A stream that ends without `done: true` was cut off and counts as a failure.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from tidings.common.events import Usage
from tidings.common.settings import LLMSettings
from tidings.responder.llm.base import (
    LLM_FAILED,
    LLM_TIMEOUT,
    LLM_UNAVAILABLE,
    Finished,
    LLMError,
    LLMEvent,
    LLMRequest,
    TextChunk,
)


class OllamaBackend:
    """Streams `/api/chat` with httpx."""

    name = "ollama"

    def __init__(self, settings: LLMSettings, *, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._client = client or httpx.AsyncClient(
            base_url=settings.ollama_url.rstrip("/"),
            # Connecting must be quick; reading may wait for a model being loaded.
            timeout=httpx.Timeout(settings.llm_timeout, connect=5.0),
        )

    @property
    def model(self) -> str:
        return self._settings.ollama_model

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        settings = self._settings
        body = {
            "model": settings.ollama_model,
            "messages": request.chat(settings.llm_system_prompt),
            "stream": True,
            "options": {
                "temperature": settings.llm_temperature,
                "num_predict": settings.llm_max_tokens,
            },
        }
        try:
            async with self._client.stream("POST", "/api/chat", json=body) as response:
                if response.status_code >= 400:
                    detail = _error_text(await response.aread()) or response.reason_phrase
                    code = LLM_UNAVAILABLE if response.status_code >= 500 else LLM_FAILED
                    raise LLMError(code, f"Ollama answered HTTP {response.status_code}: {detail}")
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    item = _parse_line(line)
                    if "error" in item:
                        raise LLMError(LLM_FAILED, f"Ollama: {item['error']}")
                    content = (item.get("message") or {}).get("content")
                    if isinstance(content, str) and content:
                        yield TextChunk(content)
                    if item.get("done") is True:
                        yield _finished(item, settings.ollama_model)
                        return
        except httpx.TimeoutException as exc:
            raise LLMError(LLM_TIMEOUT, f"Ollama did not answer in time: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise LLMError(LLM_UNAVAILABLE, f"cannot reach Ollama: {exc!r}") from exc
        raise LLMError(LLM_FAILED, "Ollama's stream ended without `done: true`")

    async def aclose(self) -> None:
        await self._client.aclose()


def _parse_line(line: str) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LLMError(LLM_FAILED, f"Ollama sent a line that is not JSON: {line[:200]!r}") from exc
    if not isinstance(item, dict):
        raise LLMError(LLM_FAILED, f"Ollama sent a line that is not an object: {line[:200]!r}")
    return item


def _error_text(body: bytes) -> str:
    try:
        item = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body[:200].decode(errors="replace")
    if isinstance(item, dict) and "error" in item:
        return str(item["error"])
    return body[:200].decode(errors="replace")


def _finished(item: dict[str, Any], default_model: str) -> Finished:
    prompt = item.get("prompt_eval_count")
    completion = item.get("eval_count")
    return Finished(
        model=str(item.get("model") or default_model),
        usage=Usage(
            prompt_tokens=prompt if isinstance(prompt, int) else None,
            completion_tokens=completion if isinstance(completion, int) else None,
        ),
        finish_reason=str(item["done_reason"]) if item.get("done_reason") else None,
    )
