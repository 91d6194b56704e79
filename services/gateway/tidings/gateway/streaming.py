"""One client's SSE stream: opening, resume or replay, live events, and how it ends.

Every stream that waits for one message ends with exactly one terminal event for it: the
answer's `done` or `error`, or an `error` the gateway decides itself - reason `timeout` when
no answer starts within GATEWAY_ANSWER_START_TIMEOUT_S, or when an answer that began sends
nothing more for GATEWAY_ANSWER_IDLE_TIMEOUT_S (its end was lost), reason `unavailable` when
the broker has been unreachable for GATEWAY_UNAVAILABLE_AFTER_S. Heartbeat comments are sent by
sse-starlette every GATEWAY_SSE_PING_S, independent of events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sse_starlette import ServerSentEvent

from tidings.common.logging import get_logger
from tidings.common.memory_api import MemoryClient, SessionNotFoundError
from tidings.gateway.answer import (
    DONE,
    AnswerStream,
    SseMessage,
    gateway_error,
    history_done,
    reset_message,
)
from tidings.gateway.hub import Subscription
from tidings.gateway.metrics import OPEN_STREAMS, STREAMS_DROPPED
from tidings.gateway.replay import StreamEvent
from tidings.gateway.resume import AHEAD_WAIT_S, Awaited, ResumePlan, plan_resume
from tidings.gateway.sse import opening, to_sse

log = get_logger(__name__)

# How often a waiting stream re-checks its deadlines (start timeout, broker outage).
_CHECK_S = 0.5


class OpenStream:
    """One client's stream; `release` ends it exactly once however it ends."""

    def __init__(self, subscription: Subscription, on_release: Callable[[], None]) -> None:
        self.subscription = subscription
        self._on_release = on_release
        self._released = False
        OPEN_STREAMS.inc()

    def release(self) -> None:
        # Called from the generator's `finally` and again as the response's background
        # task, because a generator cancelled while suspended is only finalised later.
        if self._released:
            return
        self._released = True
        self.subscription.close()
        self._on_release()
        OPEN_STREAMS.dec()
        if self.subscription.overflowed:
            STREAMS_DROPPED.inc()


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """The bounds and helpers a stream works with."""

    retry_ms: int
    start_timeout_s: float
    unavailable_after_s: float
    broker_down_for: Callable[[], float]
    memory: MemoryClient | None
    user: str | None
    idle_timeout_s: float = 120.0


async def finished_answer(
    memory: MemoryClient | None, session_id: str, message_id: str, user: str | None
) -> SseMessage | None:
    """The message's answer from history (the memory service), if it has one."""
    if memory is None:
        return None
    try:
        history = await memory.session_messages(session_id, user=user, message_id=message_id)
    except SessionNotFoundError:
        return None
    if history is None:
        return None
    for turn in history.messages:
        if turn.message_id == message_id and turn.role == "assistant":
            return history_done(message_id, turn.text, turn.source)
    return None


async def stream_events(
    stream: OpenStream,
    policy: StreamPolicy,
    *,
    message_id: str | None,
    last_event_id: str | None = None,
) -> AsyncIterator[ServerSentEvent | bytes]:
    """Everything one SSE client receives, from the opening comment to the terminal event.

    The messages of one batch go out in one write: what one fetch brought together (an
    answer's `start` and first text, its last text and its end) reaches the client together,
    for one send instead of one per event."""
    try:
        yield opening(policy.retry_ms)
        async for batch in answer_batches(
            stream.subscription, policy, message_id=message_id, last_event_id=last_event_id
        ):
            yield b"".join(to_sse(message).encode() for message in batch)
    finally:
        stream.release()


async def answer_messages(
    subscription: Subscription,
    policy: StreamPolicy,
    *,
    message_id: str | None,
    last_event_id: str | None = None,
) -> AsyncIterator[SseMessage]:
    """The stream's messages: resumed or replayed, then live, until the terminal one."""
    async for batch in answer_batches(
        subscription, policy, message_id=message_id, last_event_id=last_event_id
    ):
        for message in batch:
            yield message


async def answer_batches(
    subscription: Subscription,
    policy: StreamPolicy,
    *,
    message_id: str | None,
    last_event_id: str | None = None,
) -> AsyncIterator[list[SseMessage]]:
    """`answer_messages`, as the batches they become ready in (never empty)."""
    answers = AnswerStream(message_id)
    plan = plan_resume(subscription.snapshot, last_event_id, subscription.mark)
    for item in plan.prime:
        answers.feed(item, seen=True)
    if plan.stale:
        async for message in _start_over(subscription, policy, message_id, plan.replay):
            yield [message]
            if message.event == DONE:
                return
    replayed: list[SseMessage] = []
    for item in plan.replay:
        replayed.extend(answers.feed(item))
        if answers.finished:
            break
    if replayed:
        yield replayed
    if answers.finished:
        return
    async for batch in _live(subscription, answers, plan, policy, message_id):
        yield batch


async def _start_over(
    subscription: Subscription,
    policy: StreamPolicy,
    message_id: str | None,
    events: list[StreamEvent],
) -> AsyncIterator[SseMessage]:
    """`reset`; then the answer from history when `events` do not hold it and it is finished.

    A `done` from history ends the stream; otherwise the caller goes on to send `events`.
    """
    yield reset_message(message_id)
    if message_id is None or any(item.event.message_id == message_id for item in events):
        return
    done = await finished_answer(policy.memory, subscription.session_id, message_id, policy.user)
    if done is not None:
        yield done


async def _live(
    subscription: Subscription,
    answers: AnswerStream,
    plan: ResumePlan,
    policy: StreamPolicy,
    message_id: str | None,
) -> AsyncIterator[list[SseMessage]]:
    deadline = time.monotonic() + policy.start_timeout_s
    hold_until = time.monotonic() + AHEAD_WAIT_S
    heard_at = time.monotonic()  # the last event of the awaited message (or the opening)
    while True:
        if _stalled(answers, plan, policy, heard_at):
            yield [
                gateway_error(
                    message_id, "timeout", "answer_stalled", "The answer stopped arriving."
                )
            ]
            return
        wait_s = _CHECK_S
        if message_id is not None and not answers.has_begun(message_id):
            wait_s = min(wait_s, max(0.0, deadline - time.monotonic()) + 0.001)
        if plan.awaiting is not None:
            wait_s = min(wait_s, max(0.0, hold_until - time.monotonic()) + 0.001)
        try:
            # `asyncio.timeout`, not `wait_for`: no task of its own for every batch (and, on
            # Python 3.11, no cancellation lost when a batch arrives in the same moment).
            async with asyncio.timeout(wait_s):
                batch = await subscription.next_batch()
        except TimeoutError:
            if plan.awaiting is not None and time.monotonic() >= hold_until:
                # The event the id names did not come: this replica cannot place the client.
                async for message in _give_up_waiting(subscription, answers, plan, policy):
                    yield [message]
                if answers.finished:
                    return
                continue
            if policy.broker_down_for() >= policy.unavailable_after_s:
                yield [
                    gateway_error(
                        message_id,
                        "unavailable",
                        "broker_unavailable",
                        "The service is temporarily unavailable; try again shortly.",
                    )
                ]
                return
            waiting = message_id is not None and not answers.has_begun(message_id)
            if waiting and plan.awaiting is None and time.monotonic() >= deadline:
                yield [
                    gateway_error(
                        message_id, "timeout", "answer_timeout", "No answer started in time."
                    )
                ]
                return
            continue
        if not batch:
            return  # closed: shutdown, or the client fell too far behind (it reconnects)
        out: list[SseMessage] = []
        for item in batch:
            if item.event.message_id == message_id:
                heard_at = time.monotonic()
            if plan.awaiting is not None:
                verdict = plan.check(item)
                plan.held.append(item)
                if verdict is Awaited.HOLD:
                    continue
                if verdict is Awaited.FOUND:
                    # The client has everything up to here, exactly as this replica read it.
                    for seen in plan.settle():
                        answers.feed(seen, seen=True)
                    continue
                if out:
                    yield out
                    out = []
                async for message in _give_up_waiting(subscription, answers, plan, policy):
                    yield [message]
                if answers.finished:
                    return
                continue
            out.extend(answers.feed(item))
            if answers.finished:
                break
        if out:
            yield out
        if answers.finished:
            return


def _stalled(
    answers: AnswerStream, plan: ResumePlan, policy: StreamPolicy, heard_at: float
) -> bool:
    """True when the awaited answer began but nothing of it came for the idle bound."""
    message_id = answers.message_id
    if message_id is None or plan.awaiting is not None or not answers.has_begun(message_id):
        return False
    return time.monotonic() - heard_at >= policy.idle_timeout_s


async def _give_up_waiting(
    subscription: Subscription, answers: AnswerStream, plan: ResumePlan, policy: StreamPolicy
) -> AsyncIterator[SseMessage]:
    """The awaited id is not this replica's: `reset`, then everything held, sent."""
    held = plan.settle()
    async for message in _start_over(subscription, policy, answers.message_id, held):
        yield message
        if message.event == DONE:
            answers.finish()
            return
    for item in held:
        for message in answers.feed(item):
            yield message
        if answers.finished:
            return
