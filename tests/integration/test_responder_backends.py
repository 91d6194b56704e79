"""Each LLM backend against a real server: Ollama's streaming protocol (a local test server),
the llama.cpp OpenAI-compatible server, and the GGUF model in process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from test_responder_support import FakeOllama

from tidings.cli.infra import free_port
from tidings.common.runtime import HttpServer
from tidings.common.settings import LLMBackend, LLMSettings
from tidings.responder.llm import (
    LLM_FAILED,
    LLM_UNAVAILABLE,
    BackendSettings,
    Finished,
    LLMError,
    LLMEvent,
    LLMRequest,
    TextChunk,
    create_single,
)
from tidings.responder.llm.llamacpp import LlamaCppBackend
from tidings.responder.llm.ollama import OllamaBackend

pytestmark = pytest.mark.integration

QUESTION = LLMRequest(
    text="Say hello.",
    messages=(
        {"role": "system", "content": "You are brief."},
        {"role": "user", "content": "Say hello."},
    ),
)


@pytest.fixture
async def ollama() -> AsyncIterator[tuple[FakeOllama, str]]:
    fake = FakeOllama()
    server = HttpServer(fake.app(), "127.0.0.1", 0, name="ollama-test")
    await server.start()
    yield fake, f"http://127.0.0.1:{server.port}"
    await server.stop()


async def collect(backend: OllamaBackend | LlamaCppBackend, request: LLMRequest) -> list[LLMEvent]:
    return [event async for event in backend.stream(request)]


async def test_ollama_streams_ndjson_until_done(ollama: tuple[FakeOllama, str]) -> None:
    fake, url = ollama
    backend = OllamaBackend(
        LLMSettings(ollama_url=url, ollama_model="llama3.2:1b", llm_max_tokens=33)
    )
    events = await collect(backend, QUESTION)
    await backend.aclose()
    texts = [e.text for e in events if isinstance(e, TextChunk)]
    assert texts == ["Ollama ", "says ", "hello ", "there."]
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert (finished.model, finished.finish_reason) == ("llama3.2:1b", "stop")
    assert (finished.usage.prompt_tokens, finished.usage.completion_tokens) == (21, 4)
    sent = fake.requests[0]
    assert sent["messages"] == list(QUESTION.messages)
    assert sent["stream"] is True and sent["options"]["num_predict"] == 33


@pytest.mark.parametrize(
    ("mode", "code", "words", "detail"),
    [
        ("error-object", LLM_FAILED, 0, "out of memory"),
        ("http-error", LLM_FAILED, 0, "not found"),
        ("die", LLM_UNAVAILABLE, 2, ""),
        ("no-done", LLM_FAILED, 2, "without `done: true`"),
    ],
)
async def test_ollama_failures_are_llm_errors_after_what_was_streamed(
    ollama: tuple[FakeOllama, str], mode: str, code: str, words: int, detail: str
) -> None:
    fake, url = ollama
    fake.mode = mode
    backend = OllamaBackend(LLMSettings(ollama_url=url, ollama_model="llama3.2:1b"))
    seen: list[LLMEvent] = []
    with pytest.raises(LLMError) as info:
        async for event in backend.stream(QUESTION):
            seen.append(event)
    await backend.aclose()
    assert info.value.code == code
    assert detail in str(info.value)
    assert len(seen) == words


async def test_ollama_not_running_is_unavailable() -> None:
    backend = OllamaBackend(LLMSettings(ollama_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(LLMError) as info:
        await collect(backend, QUESTION)
    await backend.aclose()
    assert info.value.code == LLM_UNAVAILABLE


async def test_openai_backend_streams_from_the_llama_cpp_server(llm_settings: LLMSettings) -> None:
    backend = create_single(
        LLMBackend.OPENAI, llm_settings.model_copy(update={"llm_max_tokens": 16})
    )
    events = [event async for event in backend.stream(QUESTION)]
    await backend.aclose()
    texts = "".join(e.text for e in events if isinstance(e, TextChunk))
    assert texts.strip()
    assert isinstance(events[-1], Finished) and events[-1].model


async def test_llamacpp_runs_the_bundled_gguf_in_process() -> None:
    backend = create_single(
        LLMBackend.LLAMACPP,
        LLMSettings(llm_max_tokens=12, llm_temperature=0),
        BackendSettings(llamacpp_n_ctx=512, llamacpp_threads=2),
    )
    assert isinstance(backend, LlamaCppBackend)
    events = await collect(backend, QUESTION)
    assert len([e for e in events if isinstance(e, TextChunk)]) >= 2
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.model == "smollm2-135m-instruct"
    # Closing a stream early (cancel) releases the model for the next answer.
    stream = backend.stream(QUESTION)
    assert isinstance(await anext(stream), TextChunk)
    await stream.aclose()
    again = await collect(backend, QUESTION)
    assert isinstance(again[-1], Finished)
    await backend.aclose()
