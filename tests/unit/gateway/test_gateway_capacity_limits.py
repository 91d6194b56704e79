"""Every buffer of the gateway is bounded per stream and per process, and the bounds come
from the memory it is given."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from test_gateway_front_door_api import build

from tidings.common.events import ResponseDelta, ResponseDone, ResponseStart
from tidings.gateway.answer import MAX_ANSWERS, AnswerStream
from tidings.gateway.capacity import LoadShedder, budget, cgroup_memory_limit
from tidings.gateway.hub import FanoutHub
from tidings.gateway.limits import StreamCap
from tidings.gateway.replay import ReplayBuffer, StreamEvent
from tidings.gateway.settings import GatewaySettings


def event(session: str, offset: int, size: int = 100, message: str = "m") -> StreamEvent:
    start = ResponseStart(session_id=session, message_id=message, attempt="a", source="llm")
    return StreamEvent(0, offset, start, received_at=time.monotonic(), size=size)


def test_the_container_limit_is_read_from_cgroup_v2_or_v1(tmp_path: Path) -> None:
    v2, v1 = tmp_path / "memory.max", tmp_path / "limit_in_bytes"
    v2.write_text("536870912\n")
    assert cgroup_memory_limit((v2, v1)) == 512 * 2**20
    v2.write_text("max\n")
    assert cgroup_memory_limit((v2, v1)) is None
    v1.write_text("268435456\n")
    assert cgroup_memory_limit((tmp_path / "missing", v1)) == 256 * 2**20
    v1.write_text(str(2**63 - 4096))  # v1's "no limit"
    assert cgroup_memory_limit((tmp_path / "missing", v1)) is None


def test_bounds_are_shares_of_the_limit_unless_configured() -> None:
    derived = budget(
        limit_bytes=512 * 2**20,
        max_open_streams=None,
        replay_max_total_bytes=None,
        shed_at_fraction=0.85,
    )
    assert derived.max_open_streams == 2730  # half of 512 MiB / 96 KiB
    assert derived.replay_max_total_bytes == 64 * 2**20
    assert derived.shed_at_bytes == int(512 * 2**20 * 0.85)
    configured = budget(
        limit_bytes=512 * 2**20, max_open_streams=7, replay_max_total_bytes=4096, shed_at_fraction=1
    )
    assert (configured.max_open_streams, configured.replay_max_total_bytes) == (7, 4096)


def test_shedding_follows_resident_memory_read_at_most_every_interval() -> None:
    rss = [100]
    now = [0.0]
    shedder = LoadShedder(150, rss=lambda: rss[0], clock=lambda: now[0], interval_s=0.5)
    assert not shedder.overloaded()
    rss[0] = 200
    assert not shedder.overloaded()  # not read again yet
    now[0] = 0.5
    assert shedder.overloaded()
    rss[0] = 120
    now[0] = 1.0
    assert not shedder.overloaded()
    assert not LoadShedder(1, rss=lambda: None).overloaded()  # unknown: never sheds


def test_the_process_wide_stream_cap_holds_whatever_the_keys() -> None:
    cap = StreamCap(limit=2, total=3)
    assert cap.acquire("a") and cap.acquire("a") and not cap.acquire("a")
    assert cap.acquire("b") and cap.full
    assert not cap.acquire("c")  # a fresh key (a spoofed IP) gets no more
    cap.release("b")
    cap.release("nobody")  # releasing what was never held changes nothing
    assert not cap.full and cap.acquire("c") and cap.total_open == 3


def test_the_replay_buffer_holds_at_most_its_total_bytes() -> None:
    buffer = ReplayBuffer(
        max_events_per_session=100, max_sessions=1000, max_age_s=600, max_total_bytes=1000
    )
    for i in range(50):
        buffer.append(event(f"s{i}", i, size=100))
    assert buffer.total_bytes <= 1000
    assert len(buffer) == 10  # the least recently active sessions went first
    assert buffer.snapshot("s49") and not buffer.snapshot("s0")


def test_a_client_whose_backlog_passes_its_byte_bound_is_cut_off() -> None:
    hub = FanoutHub(
        ReplayBuffer(max_events_per_session=100, max_sessions=10, max_age_s=600),
        max_pending=1000,
        max_pending_bytes=1000,
    )
    subscription = hub.subscribe("s")
    for offset in range(9):
        hub.dispatch(event("s", offset, size=100))
    assert not subscription.closed
    hub.dispatch(event("s", 9, size=200))
    assert subscription.closed and subscription.overflowed
    assert hub.subscriber_count("s") == 0


def test_a_session_wide_stream_keeps_the_state_of_its_latest_answers_only() -> None:
    stream = AnswerStream()
    for n in range(MAX_ANSWERS * 3):
        ids = {"session_id": "s", "message_id": f"m{n}", "attempt": "a"}
        for offset, answer_event in enumerate(
            (
                ResponseStart(**ids, source="llm"),
                ResponseDelta(**ids, seq=0, text="hi"),
                ResponseDone(**ids, text="hi", source="llm"),
            )
        ):
            stream.feed(StreamEvent(0, n * 3 + offset, answer_event, time.monotonic()))
    assert len(stream._answers) == MAX_ANSWERS
    assert stream.has_begun(f"m{MAX_ANSWERS * 3 - 1}") and not stream.has_begun("m0")


async def test_a_client_that_stops_reading_is_disconnected_and_its_slot_freed() -> None:
    app, _, _ = build(GatewaySettings(sse_send_timeout_s=0.2, sse_ping_s=0.05))
    context = app.state.gateway
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/stream",
        "raw_path": b"/stream",
        "query_string": b"session_id=stalled-session",
        "headers": [(b"host", b"gateway")],
        "client": ("127.0.0.1", 1234),
        "server": ("gateway", 80),
    }
    sent: list[dict[str, object]] = []
    disconnect = asyncio.Event()

    async def receive() -> dict[str, object]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and len(sent) > 2:
            await asyncio.Event().wait()  # the client's window is full: this send never ends

    # Without a send timeout this would hang until the client went away.
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    disconnect.set()

    assert sent[0]["status"] == 200
    assert context.streams.total_open == 0
