"""What GET /ready checks: the producer, the broker and the answer fan-out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tidings.common.kafka import broker_reachable
from tidings.common.settings import KafkaSettings

BoolCheck = Callable[[], bool]
BrokerProbe = Callable[[], Awaitable[bool]]


class Readiness:
    """Named checks; the broker probe is cached briefly so probes cannot hammer the broker."""

    def __init__(
        self,
        *,
        producer_up: BoolCheck,
        fanout_ready: BoolCheck,
        broker_probe: BrokerProbe,
        cache_s: float = 1.0,
    ) -> None:
        self._producer_up = producer_up
        self._fanout_ready = fanout_ready
        self._broker_probe = broker_probe
        self._cache_s = cache_s
        self._lock = asyncio.Lock()
        self._broker_ok = False
        self._checked_at = float("-inf")

    async def checks(self) -> dict[str, bool]:
        """`{"producer": ..., "broker": ..., "fanout": ...}`; ready when all are true."""
        return {
            "producer": self._producer_up(),
            "broker": await self._broker(),
            "fanout": self._fanout_ready(),
        }

    async def _broker(self) -> bool:
        # One probe at a time; concurrent callers reuse its result.
        async with self._lock:
            if time.monotonic() - self._checked_at >= self._cache_s:
                self._broker_ok = await self._broker_probe()
                self._checked_at = time.monotonic()
            return self._broker_ok


def kafka_probe(settings: KafkaSettings) -> BrokerProbe:
    """A metadata request to the configured broker."""

    async def probe() -> bool:
        return await broker_reachable(settings)

    return probe
