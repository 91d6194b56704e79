"""Answer one user message: tools, else what the answer engine plans (answers/engine.py):
a canned FAQ answer, the knowledge base quoted or worded by the LLM and checked, an honest
"don't know", or the LLM for general requests; the fallback text when the LLM fails.

Every answer is `response.start`, zero or more `response.delta` (seq 0, 1, 2, ...) and
exactly one terminal event, `response.done` or `response.error`. Canned answers stream as
deltas too, so clients treat every answer the same way. If the LLM fails before any of its
text was published the user gets the fallback answer; once text was published a failure
ends the answer with `response.error` rather than passing off a fragment as an answer.

A cancel (the `cancel` event of `answer`) stops the generation and ends the answer with
`response.error` (reason `cancelled`) at once, unless its terminal event is already on
its way.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from tidings.common.events import (
    AnswerReason,
    AnswerSource,
    ErrorReason,
    ResponseDelta,
    ResponseDone,
    ResponseError,
    ResponseEvent,
    ResponseStart,
    SourceRef,
    Timings,
    Usage,
    UserMessage,
    new_id,
    utcnow,
)
from tidings.common.logging import bind, get_logger
from tidings.responder import metrics
from tidings.responder.answers.engine import STORE_WORDS, AnswerEngine, EngineConfig, Plan
from tidings.responder.answers.guard import Blocked, SentenceGuard
from tidings.responder.coalesce import Clock, DeltaCoalescer, coalesce
from tidings.responder.faq import FaqMatcher, FaqStore
from tidings.responder.llm import LLM_FAILED, LLM_TIMEOUT, LLMBackend, LLMError, LLMRequest
from tidings.responder.llm.base import Finished, TextChunk
from tidings.responder.memory import ContextSource
from tidings.responder.prompt import Prompt
from tidings.responder.tools import ToolAnswer

log = get_logger(__name__)

Emit = Callable[[ResponseEvent], Awaitable[None]]
Terminal = ResponseDone | ResponseError

INTERNAL_ERROR = "internal_error"
CANCELLED = "cancelled"
_CANCELLED = "The answer was stopped as you asked."
NO_BACKEND = "none"
_INTERRUPTED = "The answer was interrupted. Please ask again."
_INTERNAL = "Something went wrong while answering. Please ask again."
_WORD = re.compile(r"\S+\s*|\s+")


class EmitError(Exception):
    """Publishing an event failed; the message was not answered and may be retried."""


class Tool(Protocol):
    """Something that may answer a message from another system (order status, ...)."""

    async def answer(self, message: UserMessage) -> ToolAnswer | None:
        """The answer when the tool applies to `message`, else None."""
        ...


@dataclass(frozen=True)
class RouterConfig:
    """The knobs of one answer."""

    # None: the FAQ file's `fallback` (so a reload can change it too).
    fallback_text: str | None
    flush_ms: float = 40.0
    flush_chars: int = 48
    flush_first: bool = True
    # A model answer's `response.start` waits for its first text this long at most (0: it
    # goes out before the model is asked). See `_Answer.start_soon`.
    start_grace_ms: float = 250.0
    llm_timeout_s: float = 60.0
    engine: EngineConfig = field(default_factory=EngineConfig)


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
    # Set just before the terminal event is published: a cancel arriving now is too late.
    finishing: bool = False
    started_sent: bool = False
    # A `start` that waits for the answer's first text (start_soon), and what it will say.
    pending_start: asyncio.Task[None] | None = None
    pending_model: str | None = None

    async def start(
        self,
        *,
        source: AnswerSource | None = None,
        model: str | None = None,
        tool: str | None = None,
    ) -> None:
        self.started_sent = True
        await self.emit(
            ResponseStart(
                message_id=self.message.message_id,
                session_id=self.message.session_id,
                attempt=self.attempt,
                source=source,
                model=model,
                tool=tool,
            )
        )

    def start_soon(self, grace_s: float, *, model: str | None) -> None:
        """`start` goes out with the first event that follows it, or after `grace_s` if
        none comes by then (a slow model: the gateway still learns at once that the message
        was taken, well within GATEWAY_ANSWER_START_TIMEOUT_S).

        A model answer's first text usually comes sooner: `start` and that text then cross
        the broker, the gateway and the client together, instead of `start` crossing them
        alone while the model evaluates its prompt on the same machine. Every other event of
        the attempt goes through `send`, which publishes a waiting `start` before it."""
        self.pending_model = model
        self.pending_start = asyncio.create_task(
            self._start_after(grace_s), name=f"start-{self.message.message_id}"
        )

    async def _start_after(self, grace_s: float) -> None:
        await asyncio.sleep(grace_s)
        await self.start(model=self.pending_model)

    async def ensure_started(self) -> None:
        """The waiting `start`, if any, is published now (or has been): nothing of the
        attempt may reach the broker before it."""
        pending, self.pending_start = self.pending_start, None
        if pending is None:
            return
        if self.started_sent:
            await pending  # on its way: wait for it (and raise its EmitError)
            return
        pending.cancel()
        await self.start(model=self.pending_model)

    def drop_start(self) -> None:
        """An attempt abandoned before its first event publishes no `start` later. One on
        its way stays pending, so that an event sent after all (`cancelled`) waits for it;
        its failure to publish is the attempt's, raised there or nowhere."""
        pending = self.pending_start
        if pending is None:
            return
        if not self.started_sent:
            pending.cancel()
            self.pending_start = None
        else:
            pending.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def send(self, event: ResponseEvent) -> None:
        await self.ensure_started()
        await self.emit(event)

    async def delta(self, text: str) -> None:
        await self.send(
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
        faq: FaqStore | FaqMatcher,
        backend: LLMBackend,
        config: RouterConfig,
        *,
        tools: Sequence[Tool] = (),
        context: ContextSource | None = None,
        clock: Clock = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self._backend = backend
        self._config = config
        self._tools = tuple(tools)
        self._engine = AnswerEngine(faq, context, config.engine, fallback_text=config.fallback_text)
        self._clock = clock
        self._wall = wall

    async def answer(
        self, message: UserMessage, emit: Emit, *, cancel: asyncio.Event | None = None
    ) -> Terminal:
        """Answer `message`; returns the terminal event that was published.

        Setting `cancel` stops the answer with a `cancelled` error event. Raises
        `EmitError` when publishing fails; the caller may retry the whole message.
        """
        queue_s = max(0.0, (self._wall() - message.ts).total_seconds())
        run = _Answer(message, new_id(), emit, self._clock, self._clock(), queue_s * 1000)
        metrics.QUEUE_TIME.observe(queue_s)
        with bind(attempt=run.attempt):
            if cancel is None:
                return await self._answer(run)
            if cancel.is_set():
                return await self._finish_cancelled(run)
            work = asyncio.create_task(self._answer(run), name=f"answer-{message.message_id}")
            stopper = asyncio.create_task(cancel.wait(), name=f"cancel-{message.message_id}")
            try:
                await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                work.cancel()  # abandoned (shutdown, rebalance): no terminal event
                raise
            finally:
                stopper.cancel()
            if work.done() or run.finishing:
                return await work
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            if work.cancelled() or not run.terminal_sent:
                return await self._finish_cancelled(run)
            return work.result()

    async def cancelled(self, message: UserMessage, emit: Emit) -> ResponseError:
        """End a message that was cancelled before its answer started."""
        run = _Answer(message, new_id(), emit, self._clock, self._clock(), 0.0)
        with bind(attempt=run.attempt):
            return await self._finish_cancelled(run)

    async def _answer(self, run: _Answer) -> Terminal:
        try:
            return await self._route(run)
        except EmitError:
            raise
        except Exception:
            log.exception("answering failed")
            if not run.terminal_sent:
                # Best effort: the client should not wait for an answer that never comes.
                with contextlib.suppress(EmitError):
                    await self._finish_error(run, INTERNAL_ERROR, _INTERNAL)
            raise
        finally:
            run.drop_start()  # abandoned (cancelled, failed to publish): no `start` after it

    async def _route(self, run: _Answer) -> Terminal:
        for tool in self._tools:
            found_tool = await tool.answer(run.message)
            if found_tool is not None:
                log.info("answering with a tool", tool=found_tool.tool, outcome=found_tool.outcome)
                await run.start(source="tool", tool=found_tool.tool)
                return await self._canned(run, found_tool.text, "tool", tool=found_tool.tool)
        plan = await self._engine.plan(run.message)
        metrics.ENGINE_SECONDS.labels(plan=plan.kind).observe(plan.engine_ms / 1000)
        log.info("answer planned", plan=plan.kind, engine_ms=plan.engine_ms, intent=plan.intent)
        if plan.kind == "canned":
            await run.start(source="faq")
            return await self._canned(run, plan.text, "faq")
        if plan.hedge:
            metrics.UNSURE.inc()
        if plan.kind == "quote":
            await run.start(source="knowledge")
            return await self._canned(run, plan.text, "knowledge", sources=plan.sources)
        if plan.kind == "unknown":
            metrics.UNANSWERED.inc()
            await run.start(source="fallback")
            return await self._canned(run, plan.text, "fallback", reason=plan.reason)
        assert plan.prompt is not None and plan.check is not None
        grounded = plan.kind == "generate"
        source: AnswerSource = "knowledge" if grounded else "llm"
        # Generated text goes out only after it passed the check (guard.py).
        guard = SentenceGuard(
            plan.check, hold_all=grounded, store_words=STORE_WORDS, question=run.message.text
        )
        # The source is not known yet: a failed check or a failing LLM changes it.
        grace_s = self._config.start_grace_ms / 1000
        if grace_s > 0:
            run.start_soon(grace_s, model=self._backend.model)
        else:
            await run.start(model=self._backend.model)
        try:
            finished, blocked = await self._stream_llm(run, plan.prompt, guard)
        except (LLMError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, LLMError) else LLM_TIMEOUT
            metrics.LLM_FAILURES.labels(code=code).inc()
            if run.seq == 0:
                log.warning("LLM failed before answering; sending the fallback", error=str(exc))
                run.first_text_at = None
                if grounded:
                    return await self._instead(run, plan)
                return await self._canned(run, self._fallback_text(), "fallback")
            log.warning("LLM failed mid-answer", error=str(exc), deltas=run.seq)
            return await self._finish_error(run, LLM_FAILED, _INTERRUPTED)
        if blocked is not None:
            if guard.cut_mid_sentence:
                await run.delta("…")  # the sentence stops here; what it was going to say is not
            metrics.CHECK_FAILED.labels(plan=plan.kind).inc()
            log.info(
                "generated text failed the check",
                plan=plan.kind,
                problems=blocked.problems[:5],
                sentence=blocked.sentence[:200],
                sent_before=run.seq,
            )
        if run.seq == 0:
            if blocked is None:
                log.warning("LLM returned no text; sending the fallback")
            if grounded or blocked is not None:
                return await self._instead(run, plan)
            return await self._canned(run, self._fallback_text(), "fallback")
        if plan.hedge and blocked is None:
            await run.delta(f"\n\n{plan.hedge}")
        return await self._finish_done(
            run,
            source,
            finished.model,
            finished.usage,
            backend=finished.backend or self._backend.name,
            sources=plan.sources,
            reason=plan.reason,
        )

    def _fallback_text(self) -> str:
        return self._engine.fallback

    async def _instead(self, run: _Answer, plan: Plan) -> Terminal:
        """The form that cannot invent, for a generated answer of which nothing went out:
        the quoted sources (`quoted`), or the refusal of a general answer (`withheld`)."""
        return await self._canned(
            run,
            plan.instead,
            plan.instead_source,
            sources=plan.sources if plan.instead_source == "knowledge" else (),
            reason=plan.instead_reason,
        )

    async def _stream_llm(
        self, run: _Answer, prompt: Prompt, guard: SentenceGuard
    ) -> tuple[Finished, Blocked | None]:
        request = LLMRequest(text=run.message.text, messages=prompt.messages)
        finished = Finished(model=self._backend.model)
        chunks_seen = 0
        generated_at: float | None = None
        blocked: Blocked | None = None

        async def generated() -> AsyncGenerator[str, None]:
            nonlocal finished, chunks_seen, generated_at
            async with contextlib.aclosing(self._backend.stream(request)) as events:
                async for event in events:
                    if isinstance(event, TextChunk):
                        if generated_at is None and event.text:
                            generated_at = self._clock()
                        chunks_seen += 1
                        metrics.LLM_CHUNKS.inc()
                        yield event.text
                    else:
                        finished = event

        async def texts() -> AsyncIterator[str]:
            nonlocal blocked
            try:
                async with contextlib.aclosing(generated()) as model_text:
                    async for text in model_text:
                        released = guard.feed(text)
                        if released:
                            if run.first_text_at is None:
                                run.first_text_at = self._clock()
                            yield released
                released = guard.finish()
            except Blocked as exc:
                blocked = exc  # the generation stops here; nothing of it was sent
                return
            if released:
                if run.first_text_at is None:
                    run.first_text_at = self._clock()
                yield released

        coalescer = DeltaCoalescer(
            window_s=self._config.flush_ms / 1000,
            max_chars=self._config.flush_chars,
            clock=self._clock,
            first_now=self._config.flush_first,
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
        tokens = finished.usage.completion_tokens or chunks_seen
        if generated_at is not None and tokens > 1 and blocked is None:
            generating = self._clock() - generated_at
            if generating > 0:
                metrics.TOKENS_PER_SECOND.labels(
                    backend=finished.backend or self._backend.name
                ).observe((tokens - 1) / generating)
        return finished, blocked

    async def _canned(
        self,
        run: _Answer,
        text: str,
        source: AnswerSource,
        *,
        sources: Sequence[SourceRef] = (),
        reason: AnswerReason | None = None,
        tool: str | None = None,
    ) -> Terminal:
        for chunk in split_text(text, self._config.flush_chars):
            if run.first_text_at is None:
                run.first_text_at = self._clock()
            await run.delta(chunk)
        return await self._finish_done(
            run, source, None, Usage(), sources=sources, reason=reason, tool=tool
        )

    async def _finish_done(
        self,
        run: _Answer,
        source: AnswerSource,
        model: str | None,
        usage: Usage,
        *,
        backend: str = NO_BACKEND,
        sources: Sequence[SourceRef] = (),
        reason: AnswerReason | None = None,
        tool: str | None = None,
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
            sources=list(sources),
            reason=reason,
            tool=tool,
        )
        run.finishing = True
        await run.send(done)
        run.terminal_sent = True
        metrics.ANSWERS.labels(source=source, backend=backend).inc()
        if timings.first_token_ms is not None:
            metrics.FIRST_TOKEN.labels(source=source).observe(timings.first_token_ms / 1000)
        metrics.ANSWER_TIME.labels(source=source).observe((timings.total_ms or 0) / 1000)
        log.info(
            "answered",
            source=source,
            tool=tool,
            reason=reason,
            backend=backend,
            chars=len(done.text),
            deltas=run.seq,
            sources=len(done.sources),
            first_token_ms=timings.first_token_ms,
            total_ms=timings.total_ms,
        )
        return done

    async def _finish_cancelled(self, run: _Answer) -> ResponseError:
        metrics.CANCELLED.inc()
        log.info("answer cancelled", deltas=run.seq)
        if not run.started_sent:
            # Clients follow the latest attempt that started; an attempt that never started
            # could not replace a half-streamed earlier one (after a redelivery).
            await run.start()
        return await self._finish_error(run, CANCELLED, _CANCELLED, reason="cancelled")

    async def _finish_error(
        self, run: _Answer, code: str, message: str, *, reason: ErrorReason = "failed"
    ) -> ResponseError:
        error = ResponseError(
            message_id=run.message.message_id,
            session_id=run.message.session_id,
            attempt=run.attempt,
            code=code,
            message=message,
            reason=reason,
        )
        run.finishing = True
        await run.send(error)
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
