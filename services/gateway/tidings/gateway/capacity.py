"""How much the gateway may hold, derived from the memory it is given, and load shedding.

Every buffer the gateway keeps is bounded per stream and per process, and the process-wide
bounds default to shares of the memory limit: the container's (cgroup v2 `memory.max`, or
v1 `memory.limit_in_bytes`), else the machine's RAM, unless GATEWAY_MEMORY_LIMIT_BYTES says
otherwise. As a last line, new streams and messages get 503 + Retry-After once the process's
resident memory passes GATEWAY_SHED_AT_FRACTION of that limit, before it can be killed for
running out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tidings.gateway.settings import GatewaySettings

_CGROUP_FILES = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)
# cgroup v1 reports "no limit" as a huge number (page-rounded LONG_MAX).
_NO_LIMIT = 1 << 60

# Shares of the limit. An idle open SSE stream (uvicorn connection, tasks, subscription)
# measured 57 KiB of resident memory (tests/integration/test_gateway_capacity.py, -s prints
# it); STREAM_BYTES leaves room for its queue and answer state while an answer streams.
STREAM_BYTES = 96 * 1024
STREAMS_SHARE = 0.5
REPLAY_SHARE = 0.125


def cgroup_memory_limit(files: tuple[Path, ...] = _CGROUP_FILES) -> int | None:
    """The container's memory limit in bytes, or None when it has none."""
    for path in files:
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < _NO_LIMIT:
            return int(raw)
        return None  # "max": the controller is there, without a limit
    return None


def physical_memory() -> int:
    """The machine's RAM in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resident_bytes() -> int | None:
    """This process's resident memory (Linux), or None where it cannot be read."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Budget:
    """The process-wide bounds, in bytes and streams."""

    limit_bytes: int
    max_open_streams: int
    replay_max_total_bytes: int
    shed_at_bytes: int


def budget(
    *,
    limit_bytes: int | None,
    max_open_streams: int | None,
    replay_max_total_bytes: int | None,
    shed_at_fraction: float,
) -> Budget:
    """The bounds: what is configured, the rest derived from the memory limit."""
    limit = limit_bytes or min(cgroup_memory_limit() or physical_memory(), physical_memory())
    streams = max_open_streams or max(16, int(limit * STREAMS_SHARE) // STREAM_BYTES)
    replay = replay_max_total_bytes or int(limit * REPLAY_SHARE)
    return Budget(limit, streams, replay, int(limit * shed_at_fraction))


def budget_of(settings: GatewaySettings) -> Budget:
    """The gateway's bounds for its settings."""
    return budget(
        limit_bytes=settings.memory_limit_bytes,
        max_open_streams=settings.max_open_streams,
        replay_max_total_bytes=settings.replay_max_total_bytes,
        shed_at_fraction=settings.shed_at_fraction,
    )


class LoadShedder:
    """`overloaded` is True while resident memory is past the shedding point.

    Reading /proc costs a few microseconds; it is done at most every `interval_s`.
    """

    def __init__(
        self,
        shed_at_bytes: int,
        *,
        rss: Callable[[], int | None] = resident_bytes,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = 0.1,
    ) -> None:
        self.shed_at_bytes = shed_at_bytes
        self._rss = rss
        self._clock = clock
        self._interval_s = interval_s
        self._checked_at = float("-inf")
        self._overloaded = False

    def overloaded(self) -> bool:
        now = self._clock()
        if now - self._checked_at >= self._interval_s:
            self._checked_at = now
            rss = self._rss()
            self._overloaded = rss is not None and rss >= self.shed_at_bytes
        return self._overloaded
