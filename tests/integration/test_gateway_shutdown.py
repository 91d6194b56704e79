"""Gateway replicas stop in bounded time against a real broker, even when a background task
ignores its cancellation (as the broker watch once did, hanging a test's teardown)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest
import structlog

from tidings.common import kafka
from tidings.common.kafka import stop_task
from tidings.common.settings import KafkaSettings
from tidings.gateway import service as gateway_service
from tidings.gateway.service import GatewayService
from tidings.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_replicas_stop_in_bounded_time_when_their_broker_watch_will_not(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = asyncio.Event()
    probing = asyncio.Event()

    def stubborn_probe(_: KafkaSettings) -> Callable[[], Awaitable[bool]]:
        async def probe() -> bool:
            # Ignores every cancellation until the test releases it.
            probing.set()
            while not released.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await released.wait()
            return True

        return probe

    monkeypatch.setattr(gateway_service, "kafka_probe", stubborn_probe)
    monkeypatch.setattr(gateway_service, "STOP_TIMEOUT_S", 1.0)
    settings = GatewaySettings(
        host="127.0.0.1", port=0, kafka=kafka_settings, memory={"url": ""}, broker_check_s=0.05
    )
    replicas = [GatewayService(settings), GatewayService(settings)]
    for replica in replicas:
        await replica.__aenter__()
    await probing.wait()

    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        # Module loggers bound (and cached) before this test would bypass the capture.
        monkeypatch.setattr(kafka, "log", structlog.get_logger("tidings.common.kafka"))
        monkeypatch.setattr(gateway_service, "log", structlog.get_logger("tidings.gateway"))
        for replica in reversed(replicas):
            await replica.__aexit__(None, None, None)
    took = time.monotonic() - started

    abandoned = [e for e in logs if e["event"] == "task did not stop when cancelled; abandoned"]
    stopped = [e for e in logs if e["event"] == "gateway stopped"]
    released.set()
    for task in asyncio.all_tasks():
        if task.get_name() == "gateway-broker-watch":
            assert await stop_task(task, name="abandoned watch", timeout_s=5)
    assert len(stopped) == 2
    assert took < 8, took
    assert abandoned and all(e["task"] == "gateway-broker-watch" for e in abandoned)
    assert "probe" in abandoned[0]["waiting_at"]
