"""Live SSE over a real socket (in-process server, fakes behind it): delivery and clean-up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from gateway_fakes import SESSION, FakePublisher, Positions, delta, done, start
from prometheus_client import REGISTRY

from tidings.common.runtime import HttpServer
from tidings.gateway.app import create_app
from tidings.gateway.hub import FanoutHub
from tidings.gateway.readiness import Readiness
from tidings.gateway.replay import ReplayBuffer
from tidings.gateway.settings import GatewaySettings


async def _true() -> bool:
    return True


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, FanoutHub]]:
    hub = FanoutHub(
        ReplayBuffer(max_events_per_session=100, max_sessions=100, max_age_s=600),
        max_pending=100,
    )
    readiness = Readiness(producer_up=lambda: True, fanout_ready=lambda: True, broker_probe=_true)
    app = create_app(
        GatewaySettings(sse_ping_s=0.2), publisher=FakePublisher(), hub=hub, readiness=readiness
    )
    server = HttpServer(app, "127.0.0.1", 0, name="gateway-test")
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", hub
    finally:
        hub.close()
        await server.stop()


async def _wait_for(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def open_streams() -> float:
    return REGISTRY.get_sample_value("tidings_gateway_open_streams") or 0.0


async def test_live_events_arrive_with_heartbeats_and_the_stream_ends(
    served: tuple[str, FanoutHub],
) -> None:
    base, hub = served
    kafka = Positions()
    lines: list[str] = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=5) as client,
        client.stream("GET", "/stream", params={"session_id": SESSION, "message_id": "m1"}) as r,
    ):
        assert r.status_code == 200
        await _wait_for(lambda: hub.subscriber_count(SESSION) == 1)
        hub.dispatch(kafka.wrap(start()))
        hub.dispatch(kafka.wrap(delta(0, "Hi")))
        async for line in r.aiter_lines():
            lines.append(line)
            if line.startswith("data:") and '"delta":"Hi"' in line:
                # Wait long enough for a heartbeat before finishing the answer.
                await asyncio.sleep(0.5)
                hub.dispatch(kafka.wrap(done("Hi")))

    events = [line.removeprefix("event: ") for line in lines if line.startswith("event:")]
    assert events == ["start", "token", "done"]
    assert any(line.startswith(": ping") for line in lines)
    assert json.loads(lines[-2].removeprefix("data: "))["text"] == "Hi"
    await _wait_for(lambda: hub.subscriber_count() == 0)


async def test_a_client_that_leaves_is_unsubscribed(served: tuple[str, FanoutHub]) -> None:
    base, hub = served
    before = open_streams()
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        async with client.stream("GET", "/stream", params={"session_id": SESSION}) as response:
            assert response.status_code == 200
            await _wait_for(lambda: hub.subscriber_count(SESSION) == 1)
            assert open_streams() == before + 1
        # Leaving the block closes the connection mid-stream.
        await _wait_for(lambda: hub.subscriber_count() == 0)

    await _wait_for(lambda: open_streams() == before)
