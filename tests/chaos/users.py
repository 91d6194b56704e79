"""Simulated users: post, stream, sometimes drop the stream and resume on the other gateway.

Each user is an asyncio task with an httpx client. The client model is what a careful chat
UI does: append `token` deltas, drop the partial text on `reset`, stop at `done`/`error`,
and on a cut connection reconnect to the other gateway with `Last-Event-ID`. The ledger
records what every message went through so the report can count lost answers, answers shown
twice and streams that never ended.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import aconnect_sse

QUESTIONS = (
    "Tell me something about the history of paper {n}",
    "Could you summarise a good mystery novel plot {n}",
    "Which poets wrote about the sea in winter {n}",
    "Describe a cosy reading corner for a rainy day {n}",
    "What makes a science fiction story feel believable {n}",
)


@dataclass
class MessageLog:
    """Everything the client saw for one accepted message."""

    message_id: str
    session_id: str
    posted_at: float
    accepted_at: float
    gateway: str
    first_token_at: float | None = None
    ended_at: float | None = None
    terminal: str | None = None  # "done" or "error"
    error_reason: str | None = None
    done_text: str | None = None
    done_count: int = 0
    shown: str = ""
    mismatch: bool = False  # shown text at `done` differed from the done text
    resets: int = 0
    reconnects: int = 0
    resumed_elsewhere: int = 0
    never_ended: bool = False  # the client's bound ran out while the stream stayed open
    recovered_by: str | None = None  # "stream" or "history" when found by the final check
    attempts: list[str] = field(default_factory=list)  # attempt ids of the `start`s seen
    last_event_id: str | None = None  # for `Last-Event-ID` when the stream is resumed
    shown_at_done: str | None = None  # what the screen showed when `done` came, if different
    token_times: list[float] = field(default_factory=list)  # arrival of every `token`

    @property
    def ttft_s(self) -> float | None:
        if self.first_token_at is None:
            return None
        return self.first_token_at - self.posted_at


@dataclass
class Ledger:
    """All messages and rejected posts of a run."""

    messages: list[MessageLog] = field(default_factory=list)
    rejected: list[tuple[float, int]] = field(default_factory=list)  # (time, HTTP status)
    post_errors: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class UserConfig:
    """Bounds of one simulated user."""

    think_s: tuple[float, float] = (0.2, 1.0)
    disconnect_p: float = 0.3
    stream_bound_s: float = 45.0
    max_reconnects: int = 20


class User:
    """One simulated user with one session, talking through random gateways."""

    def __init__(
        self,
        index: int,
        gateways: dict[str, str],
        ledger: Ledger,
        config: UserConfig,
        rng: random.Random,
    ) -> None:
        self.index = index
        self.gateways = gateways
        self.ledger = ledger
        self.config = config
        self.rng = rng
        self.session_id: str | None = None
        self.turn = 0

    def _other(self, name: str) -> str:
        others = [g for g in self.gateways if g != name]
        return self.rng.choice(others) if others else name

    async def run(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        """Talk until `stop` is set; each turn is bounded, so this ends soon after."""
        while not stop.is_set():
            message = await self._post(client)
            if message is not None:
                await self._follow(client, message)
            else:
                await asyncio.sleep(1.0)  # refused (broker down): back off, as a UI would
            await asyncio.sleep(self.rng.uniform(*self.config.think_s))

    async def _post(self, client: httpx.AsyncClient) -> MessageLog | None:
        gateway = self.rng.choice(list(self.gateways))
        self.turn += 1
        body: dict[str, Any] = {
            "message": self.rng.choice(QUESTIONS).format(n=f"u{self.index}t{self.turn}")
        }
        if self.session_id is not None:
            body["session_id"] = self.session_id
        posted = time.monotonic()
        try:
            response = await client.post(f"{self.gateways[gateway]}/chat", json=body, timeout=10)
        except httpx.HTTPError as exc:
            self.ledger.post_errors.append((posted, type(exc).__name__))
            return None
        if response.status_code != 202:
            self.ledger.rejected.append((posted, response.status_code))
            return None
        data = response.json()
        self.session_id = data["session_id"]
        message = MessageLog(
            message_id=data["message_id"],
            session_id=data["session_id"],
            posted_at=posted,
            accepted_at=time.monotonic(),
            gateway=gateway,
        )
        self.ledger.messages.append(message)
        return message

    async def _follow(self, client: httpx.AsyncClient, message: MessageLog) -> None:
        """Stream the answer, resuming elsewhere after cuts, until a terminal or the bound."""
        deadline = message.posted_at + self.config.stream_bound_s
        gateway = self.rng.choice(list(self.gateways))
        cut_after = self.rng.randint(1, 6) if self.rng.random() < self.config.disconnect_p else None
        while message.terminal is None and time.monotonic() < deadline:
            try:
                cut = await asyncio.wait_for(
                    self._stream_once(client, gateway, message, cut_after),
                    max(0.1, deadline - time.monotonic()),
                )
            except TimeoutError:
                break
            except (httpx.HTTPError, json.JSONDecodeError, KeyError):
                cut = True  # the gateway died or the connection broke: resume on the other
                await asyncio.sleep(0.2)
            if message.terminal is not None:
                return
            if cut:
                cut_after = None
            message.reconnects += 1
            if message.reconnects > self.config.max_reconnects:
                break
            gateway = self._other(gateway)
            message.resumed_elsewhere += 1
        if message.terminal is None:
            message.never_ended = True

    async def _stream_once(
        self,
        client: httpx.AsyncClient,
        gateway: str,
        message: MessageLog,
        cut_after: int | None,
    ) -> bool:
        """One SSE connection (resuming after `message.last_event_id`); True when we cut it."""
        last_id = message.last_event_id
        headers = {"Last-Event-ID": last_id} if last_id else {}
        url = f"{self.gateways[gateway]}/stream"
        params = {"session_id": message.session_id, "message_id": message.message_id}
        tokens_here = 0
        async with aconnect_sse(
            client, "GET", url, params=params, headers=headers, timeout=httpx.Timeout(10, read=30)
        ) as source:
            if source.response.status_code != 200:
                await asyncio.sleep(0.5)
                return False
            async for sse in source.aiter_sse():
                if not sse.event or not sse.data:
                    continue
                apply_event(message, sse.event, json.loads(sse.data))
                if sse.id:
                    # Only after the event was applied: a cut between the two resumes here.
                    message.last_event_id = sse.id
                if message.terminal is not None:
                    return False
                if sse.event == "token":
                    tokens_here += 1
                    if cut_after is not None and tokens_here >= cut_after:
                        return True  # a deliberate disconnect mid-answer
        return False


def apply_event(message: MessageLog, event: str, data: dict[str, Any]) -> None:
    """The client model: what a chat UI shows after `event`."""
    now = time.monotonic()
    if event == "start":
        attempt = str(data.get("attempt", ""))
        if attempt and attempt not in message.attempts:
            message.attempts.append(attempt)
    elif event == "token":
        message.token_times.append(now)
        if message.first_token_at is None:
            message.first_token_at = now
        message.shown += str(data.get("delta", ""))
    elif event == "reset":
        message.resets += 1
        message.shown = ""
    elif event == "done":
        message.done_count += 1
        text = str(data.get("text", ""))
        if message.done_count == 1:
            if message.shown and message.shown != text:
                message.mismatch = True
                message.shown_at_done = message.shown
            message.done_text = text
            message.shown = text
            message.terminal = "done"
            message.ended_at = now
            if message.first_token_at is None:
                message.first_token_at = now
    elif event == "error" and message.terminal is None:
        message.terminal = "error"
        message.error_reason = str(data.get("reason", ""))
        message.ended_at = now


async def final_check(
    client: httpx.AsyncClient, gateways: dict[str, str], message: MessageLog, bound_s: float
) -> None:
    """After recovery: does a message without `done` have an answer after all?

    A fresh stream for the message (replayed from a gateway's buffer) or the session's
    history in the memory service count; an `error` seen earlier stays the client's outcome
    but the answer is marked as found.
    """
    for url in gateways.values():
        probe = MessageLog(
            message.message_id, message.session_id, time.monotonic(), time.monotonic(), ""
        )
        try:
            async with asyncio.timeout(bound_s):
                async with aconnect_sse(
                    client,
                    "GET",
                    f"{url}/stream",
                    params={"session_id": message.session_id, "message_id": message.message_id},
                    timeout=httpx.Timeout(5, read=bound_s),
                ) as source:
                    if source.response.status_code == 200:
                        async for sse in source.aiter_sse():
                            if sse.event and sse.data:
                                apply_event(probe, sse.event, json.loads(sse.data))
                            if probe.terminal is not None:
                                break
        except (TimeoutError, httpx.HTTPError, json.JSONDecodeError):
            pass
        if probe.terminal == "done":
            message.recovered_by = "stream"
            return
        try:
            response = await client.get(f"{url}/sessions/{message.session_id}/messages", timeout=5)
            if response.status_code == 200:
                turns = response.json().get("messages", [])
                if any(
                    t.get("message_id") == message.message_id and t.get("role") == "assistant"
                    for t in turns
                ):
                    message.recovered_by = "history"
                    return
        except (httpx.HTTPError, ValueError):
            pass
