"""Any OpenAI-compatible chat endpoint: vLLM, the llama.cpp server, OpenAI, LM Studio."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

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


class OpenAICompatBackend:
    """Streams chat completions with the `openai` SDK."""

    def __init__(
        self,
        settings: LLMSettings,
        client: AsyncOpenAI | None = None,
        *,
        name: str = "openai",
        base_url: str | None = None,
        model: str | None = None,
        token: Callable[[], str] | None = None,
    ) -> None:
        self.name = name
        self._settings = settings
        self._model = model or settings.openai_model
        # `token` is called per request (a rotating service-account token); else the key.
        self._token = token
        self._client = client or AsyncOpenAI(
            base_url=base_url or settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value() if token is None else "per-request",
            timeout=settings.llm_timeout,
            # One quick retry of a refused connection; the responder's own deadline
            # (LLM_TIMEOUT) still bounds the whole generation.
            max_retries=1,
        )

    @property
    def model(self) -> str:
        return self._model

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        """Stream the answer; translate SDK and protocol errors into `LLMError`."""
        settings = self._settings
        try:
            headers = {} if self._token is None else {"Authorization": f"Bearer {self.bearer()}"}
            stream = await self._client.chat.completions.create(
                model=self._model,
                messages=_chat_messages(request.chat(settings.llm_system_prompt)),
                extra_headers=headers,
                max_tokens=settings.llm_max_tokens,
                temperature=settings.llm_temperature,
                stream=True,
                # Token counts in a last chunk (vLLM, OpenAI); servers without it ignore it.
                stream_options={"include_usage": True},
            )
        except OSError as exc:
            raise LLMError(LLM_UNAVAILABLE, f"cannot read the API token: {exc}") from exc
        except openai.OpenAIError as exc:
            raise _llm_error(exc) from exc
        model: str | None = None
        usage = Usage()
        finish_reason: str | None = None
        try:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = Usage(
                        prompt_tokens=chunk.usage.prompt_tokens,
                        completion_tokens=chunk.usage.completion_tokens,
                    )
                for choice in chunk.choices:
                    finish_reason = choice.finish_reason or finish_reason
                    if choice.delta.content:
                        yield TextChunk(choice.delta.content)
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            raise _llm_error(exc) from exc
        finally:
            await stream.close()
        yield Finished(model=model or self._model, usage=usage, finish_reason=finish_reason)

    def bearer(self) -> str:
        """The bearer token sent now (a per-request token, read fresh, or the API key)."""
        if self._token is not None:
            return self._token()
        return self._settings.openai_api_key.get_secret_value()

    async def aclose(self) -> None:
        await self._client.close()


def _chat_messages(messages: list[dict[str, str]]) -> list[ChatCompletionMessageParam]:
    result: list[ChatCompletionMessageParam] = []
    for message in messages:
        if message["role"] == "system":
            result.append({"role": "system", "content": message["content"]})
        elif message["role"] == "assistant":
            result.append({"role": "assistant", "content": message["content"]})
        else:
            result.append({"role": "user", "content": message["content"]})
    return result


def _llm_error(exc: Any) -> LLMError:
    if isinstance(exc, openai.APITimeoutError):
        return LLMError(LLM_TIMEOUT, "the model server did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError(LLM_UNAVAILABLE, f"cannot reach the model server: {exc}")
    if isinstance(exc, openai.APIStatusError):
        return LLMError(LLM_FAILED, f"the model server answered HTTP {exc.status_code}: {exc}")
    return LLMError(LLM_FAILED, f"{type(exc).__name__}: {exc}")
