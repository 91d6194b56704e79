"""Per-caller limits: a token bucket for new messages and a cap on open streams.

Keys are the JWT subject, or the client IP for anonymous callers. Both tables are bounded so
a flood of distinct keys cannot grow memory without limit: idle buckets are refilled anyway,
so forgetting the least recently used one only forgives a caller that has been quiet.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

_MAX_KEYS = 100_000


class RateLimiter:
    """Token bucket per key: `burst` tokens, refilled at `rate_per_s`."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_keys: int = _MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until one is available."""
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self._rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


def retry_after(wait_s: float) -> str:
    """A `Retry-After` value in whole seconds, at least 1."""
    return str(max(1, math.ceil(wait_s)))


class StreamCap:
    """Counts open streams per key and in all; `acquire` refuses beyond `limit` per key, and
    `full` says the process holds `total` (a cap no key can share or spoof its way past)."""

    def __init__(self, limit: int, total: int | None = None) -> None:
        self._limit = limit
        self._total = total
        self._open: dict[str, int] = {}
        self._count = 0

    @property
    def full(self) -> bool:
        """True when the process-wide cap is reached."""
        return self._total is not None and self._count >= self._total

    @property
    def total_open(self) -> int:
        return self._count

    def acquire(self, key: str) -> bool:
        """Reserve one stream for `key`; False when it already holds `limit` or all are taken."""
        count = self._open.get(key, 0)
        if count >= self._limit or self.full:
            return False
        self._open[key] = count + 1
        self._count += 1
        return True

    def release(self, key: str) -> None:
        """Give one stream back."""
        held = self._open.get(key, 0)
        if held <= 0:
            return
        self._count -= 1
        if held == 1:
            self._open.pop(key, None)
        else:
            self._open[key] = held - 1

    def open_streams(self, key: str) -> int:
        return self._open.get(key, 0)
