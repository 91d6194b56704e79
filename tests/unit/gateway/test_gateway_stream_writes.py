"""What one fetch brings together reaches the client in one write."""

from __future__ import annotations

import asyncio

from gateway_fakes import SESSION, Positions, delta, done, parse_sse, start, stream_policy
from sse_starlette import ServerSentEvent

from tidings.gateway.hub import FanoutHub
from tidings.gateway.replay import ReplayBuffer
from tidings.gateway.streaming import OpenStream, stream_events


def text(chunk: ServerSentEvent | bytes) -> str:
    return (chunk if isinstance(chunk, bytes) else chunk.encode()).decode()


async def test_events_of_one_batch_go_out_in_one_write_and_in_order() -> None:
    buffer = ReplayBuffer(max_events_per_session=1000, max_sessions=100, max_age_s=600)
    hub = FanoutHub(buffer, max_pending=100)
    stream = OpenStream(hub.subscribe(SESSION), on_release=lambda: None)
    writes = stream_events(stream, stream_policy(), message_id="m1")
    kafka = Positions()
    assert "stream open" in text(await anext(writes))
    # start and the first text in one fetch (the responder publishes them together) ...
    hub.dispatch(kafka.wrap(start()))
    hub.dispatch(kafka.wrap(delta(0, "Hello ")))
    first = parse_sse(text(await asyncio.wait_for(anext(writes), 2)))
    assert [e.event for e in first] == ["start", "token"]
    # ... a later text alone ...
    hub.dispatch(kafka.wrap(delta(1, "there")))
    assert [e.event for e in parse_sse(text(await asyncio.wait_for(anext(writes), 2)))] == ["token"]
    # ... and the last text with the end.
    hub.dispatch(kafka.wrap(delta(2, ".")))
    hub.dispatch(kafka.wrap(done("Hello there.")))
    last = parse_sse(text(await asyncio.wait_for(anext(writes), 2)))
    assert [e.event for e in last] == ["token", "done"]
    assert [e.data["seq"] for e in [*first, *last] if e.event == "token"] == [0, 2]
    await writes.aclose()
    assert stream.subscription.closed
