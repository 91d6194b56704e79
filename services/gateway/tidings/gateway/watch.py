"""Knowing quickly whether the broker is there, and recovering when it comes back.

aiokafka clients retry quietly while a broker is down, so a request would otherwise hang
until its own timeout. The watch probes the broker every `GATEWAY_BROKER_CHECK_S`; while it
is down `POST /chat` answers 503 at once, `/ready` is false and open streams learn how long
it has been down. When it comes back, the recovery callbacks run (recreate topics a broker
without durable storage lost, restart the readers) before the watch reports it up again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

from tidings.common.kafka import stop_task
from tidings.common.logging import get_logger

log = get_logger(__name__)

Probe = Callable[[], Awaitable[bool]]
Recovery = Callable[[], Awaitable[None]]


class BrokerWatch:
    """Periodic broker probe with a down-since clock and recovery on the way back up."""

    def __init__(
        self,
        probe: Probe,
        *,
        interval_s: float,
        on_recovered: list[Recovery] | None = None,
        clock: Callable[[], float] = time.monotonic,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self._probe = probe
        self._interval_s = interval_s
        self._on_recovered = list(on_recovered or [])
        self._clock = clock
        self._down_since: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_timeout_s = stop_timeout_s

    @property
    def up(self) -> bool:
        """False from the first failed probe until recovery has finished."""
        return self._down_since is None

    def down_for(self) -> float:
        """Seconds the broker has been unreachable (0.0 while it is up)."""
        return 0.0 if self._down_since is None else self._clock() - self._down_since

    def add_recovery(self, callback: Recovery) -> None:
        self._on_recovered.append(callback)

    async def check(self) -> bool:
        """Probe once, update the state, and run recovery when the broker is back."""
        ok = await self._probe()
        if not ok:
            if self._down_since is None:
                self._down_since = self._clock()
                log.warning("broker unreachable")
            return False
        if self._down_since is not None:
            log.info("broker reachable again, recovering", down_s=round(self.down_for(), 1))
            for callback in self._on_recovered:
                await callback()
            self._down_since = None
            log.info("recovered from broker outage")
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check()
            except Exception:
                # A recovery step failed (broker flapping): stay down, try again next tick.
                if self._down_since is None:
                    self._down_since = self._clock()
                log.exception("recovery after broker outage failed; retrying")

    async def __aenter__(self) -> BrokerWatch:
        self._task = asyncio.create_task(self._run(), name="gateway-broker-watch")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Bounded: a probe or recovery step can miss the cancellation (see `stop_task`), and
        # the watch would then run on and hold up the gateway's shutdown for good.
        if self._task is not None:
            await stop_task(self._task, name="gateway-broker-watch", timeout_s=self._stop_timeout_s)
            self._task = None
