"""The configured backend, an optional second one, each behind a circuit breaker.

A backend that fails before its first token (refused, HTTP error, error object, timeout,
open circuit) hands the question to the next one; the user never sees the failed try.
Once text was streamed a failure is final: a half answer must not be continued by another
model. `LLM_TIMEOUT` bounds each backend's generation. When every backend failed the
router sends the fallback text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace

from tidings.common.logging import get_logger
from tidings.responder import metrics
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
)
from tidings.responder.llm.breaker import CircuitBreaker

log = get_logger(__name__)
CIRCUIT_OPEN = "circuit_open"


class BackendChain:
    """An `LLMBackend` that tries its backends in order; `Finished.backend` names who answered."""

    def __init__(
        self,
        backends: Sequence[LLMBackend],
        *,
        timeout_s: float,
        breaker_failures: int = 3,
        breaker_reset_s: float = 30.0,
    ) -> None:
        if not backends:
            raise ValueError("at least one backend is needed")
        self.backends = tuple(backends)
        self.breakers = tuple(
            CircuitBreaker(b.name, failures=breaker_failures, reset_s=breaker_reset_s)
            for b in backends
        )
        self._timeout_s = timeout_s

    @property
    def name(self) -> str:
        return self.backends[0].name

    @property
    def model(self) -> str:
        return self.backends[0].model

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        problems: list[str] = []
        for backend, breaker in zip(self.backends, self.breakers, strict=True):
            if not breaker.allow():
                metrics.BACKEND_ERRORS.labels(backend=backend.name, code=CIRCUIT_OPEN).inc()
                problems.append(f"{backend.name}: circuit open")
                continue
            streamed = False
            settled = False
            events = backend.stream(request)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._timeout_s
            try:
                while True:
                    event = await _next(events, deadline, backend.name, self._timeout_s)
                    if isinstance(event, TextChunk):
                        streamed = True
                        yield event
                        continue
                    breaker.success()
                    settled = True
                    yield replace(event, backend=backend.name)
                    return
            except LLMError as exc:
                breaker.failure()
                settled = True
                metrics.BACKEND_ERRORS.labels(backend=backend.name, code=exc.code).inc()
                if streamed:
                    raise
                log.warning(
                    "LLM backend failed before answering; trying the next",
                    backend=backend.name,
                    error=str(exc),
                )
                problems.append(f"{backend.name}: {exc}")
            finally:
                if not settled:
                    # Closed by the caller (cancel): neither a success nor a failure.
                    breaker.release()
                with contextlib.suppress(LLMError):
                    await events.aclose()
        raise LLMError(LLM_UNAVAILABLE, "no LLM backend answered: " + "; ".join(problems))

    async def aclose(self) -> None:
        for backend in self.backends:
            await backend.aclose()


async def _next(
    events: AsyncGenerator[LLMEvent, None], deadline: float, name: str, timeout_s: float
) -> LLMEvent:
    try:
        async with asyncio.timeout_at(deadline):
            return await anext(events)
    except StopAsyncIteration:
        raise LLMError(LLM_FAILED, f"{name} ended its stream without finishing") from None
    except TimeoutError:
        raise LLMError(LLM_TIMEOUT, f"{name} did not finish within {timeout_s}s") from None
    except LLMError:
        raise
    except Exception as exc:
        # A backend bug must not take the responder down: it is this backend's failure.
        raise LLMError(LLM_FAILED, f"{name} failed: {exc!r}") from exc


__all__ = ["CIRCUIT_OPEN", "BackendChain", "Finished"]
