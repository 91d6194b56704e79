"""A gateway always stops: no cancellation is lost, and what does not end in time is abandoned.

The teardown hang this guards against: the broker watch was cancelled in the moment its probe's
metadata request completed; `asyncio.wait_for` (Python 3.11) returned that result and dropped
the cancellation, so the watch probed on forever and `GatewayService.__aexit__` awaited it
forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from tidings.common import kafka
from tidings.common.kafka import broker_reachable, stop_client, stop_task
from tidings.common.settings import KafkaSettings
from tidings.gateway.readiness import kafka_probe
from tidings.gateway.watch import BrokerWatch

pytestmark = pytest.mark.timeout(30)


@contextlib.contextmanager
def _kafka_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """What `tidings.common.kafka` logs inside the block. Its module logger may have been
    bound and cached (`cache_logger_on_first_use`) by an earlier test that configured
    logging, which `capture_logs` cannot reach: a fresh one stands in for it meanwhile."""
    with structlog.testing.capture_logs() as logs:
        monkeypatch.setattr(kafka, "log", structlog.get_logger("tidings.common.kafka"))
        yield logs


class _FakeAdmin:
    """An admin client that tells when it is in `moment` ("request" or "close")."""

    moment = "request"
    there: asyncio.Event
    answer: asyncio.Future[list[str]]
    calls = 0

    def __init__(self, **_: Any) -> None:
        self._metadata = asyncio.create_task(asyncio.sleep(60))

    async def start(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        cls = type(self)
        cls.calls += 1
        if cls.moment == "request" and cls.calls == 1:
            cls.there.set()
            return await cls.answer  # answered when the test says so
        return []

    async def close(self) -> None:
        # As aiokafka's AIOKafkaClient.close(): it cancels its metadata task and awaits it
        # under suppress(CancelledError) - which swallows a cancellation of the caller too.
        cls = type(self)
        if cls.moment == "close" and cls.calls == 1:
            cls.there.set()
        self._metadata.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._metadata


@pytest.fixture(params=["request", "close"])
async def admin(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> type[_FakeAdmin]:
    """Where the cancellation arrives: as the metadata request is answered (Python 3.11's
    asyncio.wait_for dropped it), or while the admin client closes (aiokafka dropped it)."""
    _FakeAdmin.moment = request.param
    _FakeAdmin.there = asyncio.Event()
    _FakeAdmin.answer = asyncio.get_running_loop().create_future()
    _FakeAdmin.calls = 0
    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", _FakeAdmin)
    return _FakeAdmin


async def test_the_broker_probe_is_cancelled_whenever_it_is_cancelled(
    admin: type[_FakeAdmin],
) -> None:
    probing = asyncio.create_task(broker_reachable(KafkaSettings()))
    await admin.there.wait()
    if not admin.answer.done():
        admin.answer.set_result([])  # the broker answers in the moment of the cancel
    probing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probing


async def test_a_stopped_broker_watch_ends_at_its_first_cancellation(
    admin: type[_FakeAdmin],
) -> None:
    watch = BrokerWatch(kafka_probe(KafkaSettings()), interval_s=0.01, stop_timeout_s=5)
    await watch.__aenter__()
    running = watch._task
    assert running is not None
    await admin.there.wait()
    if not admin.answer.done():
        admin.answer.set_result([])
    with structlog.testing.capture_logs() as logs:
        stopping = asyncio.create_task(watch.__aexit__(None, None, None))
        try:
            done, _ = await asyncio.wait([stopping], timeout=4)
            assert stopping in done, "the broker watch did not stop"
            assert running.done()
        finally:
            for task in (stopping, running):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert not logs  # no second cancel was needed


async def _ignores_cancellation(times: float, stopped: asyncio.Event) -> None:
    """Runs until cancelled more than `times` times (or `stopped` is set)."""
    ignored = 0
    while not stopped.is_set():
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            ignored += 1
            if ignored > times:
                raise


async def test_a_task_that_ignores_its_cancellation_is_cancelled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = asyncio.create_task(_ignores_cancellation(1, asyncio.Event()))
    await asyncio.sleep(0.02)
    with _kafka_logs(monkeypatch) as logs:
        assert await stop_task(task, name="t", timeout_s=5, again_after_s=0.1)
    assert task.cancelled()
    assert [entry["event"] for entry in logs] == [
        "task ignored its cancellation; cancelling it again"
    ]
    assert "_ignores_cancellation" in logs[0]["waiting_at"]


async def test_a_task_that_will_not_end_is_abandoned_with_where_it_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stopped = asyncio.Event()
    task = asyncio.create_task(_ignores_cancellation(float("inf"), stopped))
    try:
        await asyncio.sleep(0.02)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with _kafka_logs(monkeypatch) as logs:
            assert not await stop_task(task, name="stuck", timeout_s=0.3, again_after_s=0.1)
        assert loop.time() - started < 1.0
        assert logs[-1]["event"] == "task did not stop when cancelled; abandoned"
        assert logs[-1]["task"] == "stuck"
        assert "_ignores_cancellation" in logs[-1]["waiting_at"]
    finally:
        # Whatever failed above, the task must not outlive the test: it ignores every
        # cancellation, and the session's event loop could never close.
        stopped.set()
        await task


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    stopped = asyncio.Event()
    task = asyncio.create_task(_ignores_cancellation(float("inf"), stopped))
    try:
        await asyncio.sleep(0.02)
        stopping = asyncio.create_task(stop_task(task, name="stuck", timeout_s=10))
        await asyncio.sleep(0.05)
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
    finally:
        stopped.set()  # it ignores every cancellation: it must not outlive the test
        await task


class _Inner:
    closed = False

    async def close(self) -> None:
        self.closed = True


class _NeverStops:
    """A client whose stop waits on a background task that lost its cancellation."""

    def __init__(self) -> None:
        self._client = _Inner()

    async def stop(self) -> None:
        await asyncio.Event().wait()


class _StopCancelledByItsOwnRequest:
    """aiokafka's consumer stopped while a fetch request backed off: `stop()` ends with that
    request's cancellation before the connections are closed."""

    def __init__(self) -> None:
        self._client = _Inner()

    async def stop(self) -> None:
        request = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        request.cancel()
        await request


async def test_a_client_that_does_not_stop_is_abandoned_and_its_connections_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _NeverStops()
    with _kafka_logs(monkeypatch) as logs:
        assert not await stop_client(client, name="c", timeout_s=0.2)
    assert client._client.closed
    assert logs[0]["event"] == "Kafka client did not stop in time; abandoned"
    assert "stop" in logs[0]["waiting_at"]


async def test_a_stop_ended_by_its_own_request_closes_the_connections() -> None:
    client = _StopCancelledByItsOwnRequest()
    assert await stop_client(client, name="c", timeout_s=5)
    assert client._client.closed
    current = asyncio.current_task()
    assert current is not None and not current.cancelling()
