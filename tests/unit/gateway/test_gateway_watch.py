"""The broker watch: down quickly, a clock for streams, recovery before reporting up."""

from __future__ import annotations

import pytest

from tidings.gateway.watch import BrokerWatch


class Probe:
    def __init__(self) -> None:
        self.ok = True

    async def __call__(self) -> bool:
        return self.ok


async def test_down_since_the_first_failure_and_up_only_after_recovery() -> None:
    probe = Probe()
    now = [100.0]
    recovered: list[bool] = []

    async def recover() -> None:
        recovered.append(watch.up)  # still down while recovering

    watch = BrokerWatch(probe, interval_s=1, on_recovered=[recover], clock=lambda: now[0])
    assert await watch.check() and watch.up and watch.down_for() == 0.0

    probe.ok = False
    assert not await watch.check()
    now[0] += 4
    assert not await watch.check()
    assert not watch.up and watch.down_for() == 4.0

    probe.ok = True
    assert await watch.check()
    assert recovered == [False]
    assert watch.up and watch.down_for() == 0.0


async def test_a_failed_recovery_keeps_it_down_until_a_later_check_succeeds() -> None:
    probe = Probe()
    attempts: list[int] = []

    async def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("broker flapped")

    watch = BrokerWatch(probe, interval_s=1, on_recovered=[flaky])
    probe.ok = False
    await watch.check()
    probe.ok = True
    with pytest.raises(ConnectionError):
        await watch.check()
    assert not watch.up
    assert await watch.check()
    assert watch.up and len(attempts) == 2
