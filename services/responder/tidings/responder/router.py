"""Answer one user message: FAQ, else LLM, else the fallback text, as a stream of events.

Every answer is `response.start`, zero or more `response.delta` (seq 0, 1, 2, ...) and
exactly one terminal event, `response.done` or `response.error`. Canned answers stream as
deltas too, so clients treat every answer the same way. If the LLM fails before any of its
text was published the user gets the fallback answer; once text was published a failure
ends the answer with `response.error` rather than passing off a fragment as an answer.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tidings.common.events import (
    AnswerSource,
    ResponseDelta,
    ResponseDone,
    ResponseError,
    ResponseEvent,
    ResponseStart,
    Timings,
    Usage,
    UserMessage,
    new_id,
    utcnow,
)
from tidings.common.logging import bind, get_logger
from tidings.responder import metrics
from tidings.responder.coalesce import Clock, DeltaCoalescer, coalesce
from tidings.responder.faq import FaqMatcher
from tidings.responder.llm import LLM_FAILED, LLM_TIMEOUT, LLMBackend, LLMError, LLMRequest
from tidings.responder.llm.base import Finished, TextChunk

log = get_logger(__name__)

Emit = Callable[[ResponseEvent], Awaitable[None]]
Terminal = ResponseDone | ResponseError

INTERNAL_ERROR = "internal_error"
_INTERRUPTED = "The answer was interrupted. Please ask again."
_INTERNAL = "Something went wrong while answering. Please ask again."
_WORD = re.compile(r"\S+\s*|\s+")


class EmitError(Exception):
    """Publishing an event failed; the message was not answered and may be retried."""


@dataclass(frozen=True)
class RouterConfig:
    """The knobs of one answer."""

    fallback_text: str
    flush_ms: float = 40.0
    flush_chars: int = 48
    llm_timeout_s: float = 60.0


@dataclass
class _Answer:
    """Bookkeeping of one attempt: ids, clocks and what was published."""

    message: UserMessage
    attempt: str
    emit: Emit
    clock: Clock
    started: float
    queue_ms: float
    seq: int = 0
    first_text_at: float | None = None
    parts: list[str] = field(default_factory=list)
    terminal_sent: bool = False

    async def start(self, *, source: AnswerSource | None = None, model: str | None = None) -> None:
        await self.emit(
            ResponseStart(
                message_id=self.message.message_id,
                session_id=self.message.session_id,
                attempt=self.attempt,
                source=source,
                model=model,
            )
        )

    async def delta(self, text: str) -> None:
        await self.emit(
            ResponseDelta(
                message_id=self.message.message_id,
                session_id=self.message.session_id,
                attempt=self.attempt,
                seq=self.seq,
                text=text,
            )
        )
        self.seq += 1
        self.parts.append(text)
        metrics.DELTAS.inc()

    def timings(self) -> Timings:
        now = self.clock()
        first = None if self.first_text_at is None else (self.first_text_at - self.started)
        return Timings(
            queue_ms=round(self.queue_ms, 3),
            first_token_ms=None if first is None else round(first * 1000, 3),
            total_ms=round((now - self.started) * 1000, 3),
        )


class Router:
    """Produces the event sequence answering one message through an `emit` callback."""

    def __init__(
        self,
        faq: FaqMatcher,
        backend: LLMBackend,
        config: RouterConfig,
        *,
        clock: Clock = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self._faq = faq
        self._backend = backend
        self._config = config
        self._clock = clock
        self._wall = wall

    async def answer(
        self, message: UserMessage, emit: Emit, *, context: Sequence[str] = ()
    ) -> Terminal:
        """Answer `message`; returns the terminal event that was published.

        `context` carries passages for the LLM prompt (conversation memory, knowledge).
        Raises `EmitError` when publishing fails; the caller may retry the whole message.
        """
        queue_s = max(0.0, (self._wall() - message.ts).total_seconds())
        run = _Answer(message, new_id(), emit, self._clock, self._clock(), queue_s * 1000)
        metrics.QUEUE_TIME.observe(queue_s)
        with bind(attempt=run.attempt):
            try:
                return await self._route(run, context)
            except EmitError:
                raise
            except Exception:
                log.exception("answering failed")
                if not run.terminal_sent:
                    # Best effort: the client should not wait for an answer that never comes.
                    with contextlib.suppress(EmitError):
                        await self._finish_error(run, INTERNAL_ERROR, _INTERNAL)
                raise

    async def _route(self, run: _Answer, context: Sequence[str]) -> Terminal:
        found = self._faq.match(run.message.text)
        if found is not None:
            log.info("answering from the FAQ", intent=found.intent.id)
            await run.start(source="faq")
            return await self._canned(run, found.answer, "faq")
        # The source is not known yet: a failing LLM is replaced by the fallback.
        await run.start(model=self._backend.model)
        try:
            finished = await self._stream_llm(run, context)
        except (LLMError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, LLMError) else LLM_TIMEOUT
            metrics.LLM_FAILURES.labels(code=code).inc()
            if run.seq == 0:
                log.warning("LLM failed before answering; sending the fallback", error=str(exc))
                run.first_text_at = None
                return await self._canned(run, self._config.fallback_text, "fallback")
            log.warning("LLM failed mid-answer", error=str(exc), deltas=run.seq)
            return await self._finish_error(run, LLM_FAILED, _INTERRUPTED)
        if run.seq == 0:
            log.warning("LLM returned no text; sending the fallback")
            return await self._canned(run, self._config.fallback_text, "fallback")
        return await self._finish_done(run, "llm", finished.model, finished.usage)

    async def _stream_llm(self, run: _Answer, context: Sequence[str]) -> Finished:
        request = LLMRequest(text=run.message.text, context=tuple(context))
        finished = Finished(model=self._backend.model)

        async def texts() -> AsyncIterator[str]:
            nonlocal finished
            async with contextlib.aclosing(self._backend.stream(request)) as events:
                async for event in events:
                    if isinstance(event, TextChunk):
                        if run.first_text_at is None and event.text:
                            run.first_text_at = self._clock()
                        metrics.LLM_CHUNKS.inc()
                        yield event.text
                    else:
                        finished = event

        coalescer = DeltaCoalescer(
            window_s=self._config.flush_ms / 1000,
            max_chars=self._config.flush_chars,
            clock=self._clock,
        )
        chunks = coalesce(
            texts(), coalescer, timeout_s=self._config.llm_timeout_s, clock=self._clock
        )
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                await run.delta(chunk)
        for kind, count in (
            ("prompt", finished.usage.prompt_tokens),
            ("completion", finished.usage.completion_tokens),
        ):
            if count:
                metrics.LLM_TOKENS.labels(kind=kind).inc(count)
        return finished

    async def _canned(self, run: _Answer, text: str, source: AnswerSource) -> Terminal:
        for chunk in split_text(text, self._config.flush_chars):
            if run.first_text_at is None:
                run.first_text_at = self._clock()
            await run.delta(chunk)
        return await self._finish_done(run, source, None, Usage())

    async def _finish_done(
        self, run: _Answer, source: AnswerSource, model: str | None, usage: Usage
    ) -> ResponseDone:
        timings = run.timings()
        done = ResponseDone(
            message_id=run.message.message_id,
            session_id=run.message.session_id,
            attempt=run.attempt,
            text="".join(run.parts),
            source=source,
            model=model,
            usage=usage,
            timings=timings,
        )
        await run.emit(done)
        run.terminal_sent = True
        metrics.ANSWERS.labels(source=source).inc()
        if timings.first_token_ms is not None:
            metrics.FIRST_TOKEN.labels(source=source).observe(timings.first_token_ms / 1000)
        metrics.ANSWER_TIME.labels(source=source).observe((timings.total_ms or 0) / 1000)
        log.info(
            "answered",
            source=source,
            chars=len(done.text),
            deltas=run.seq,
            first_token_ms=timings.first_token_ms,
            total_ms=timings.total_ms,
        )
        return done

    async def _finish_error(self, run: _Answer, code: str, message: str) -> ResponseError:
        error = ResponseError(
            message_id=run.message.message_id,
            session_id=run.message.session_id,
            attempt=run.attempt,
            code=code,
            message=message,
        )
        await run.emit(error)
        run.terminal_sent = True
        metrics.ERRORS.labels(code=code).inc()
        return error


def split_text(text: str, max_chars: int) -> list[str]:
    """`text` in chunks of about `max_chars`, cut between words; joined they give `text`."""
    chunks: list[str] = []
    current = ""
    for word in _WORD.findall(text):
        if current and len(current) + len(word.rstrip()) > max_chars:
            chunks.append(current)
            current = ""
        current += word
    if current:
        chunks.append(current)
    return chunks
