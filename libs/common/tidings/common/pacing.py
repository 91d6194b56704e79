"""Fetch pacing (Tansu only): a short long-poll wait while traffic flows, the longer one idle.

Apache Kafka answers a fetch as soon as a record arrives, so there the pacer is off
(`enabled=False`: it never touches the consumer) and every fetch uses KAFKA_FETCH_MAX_WAIT_MS.
Tansu holds every fetch for its whole wait, data or not, so there the wait bounds the latency
of every hop (a record waits for the end of the fetch in progress) and sets how often an idle
consumer polls. One fixed wait trades the two against each other; a pacer does not have to:
a consumer fetches with KAFKA_FETCH_BUSY_WAIT_MS while its traffic flows (the responder:
messages arriving and answers finishing; the gateway's fan-out: clients waiting for answers
on the replica) and for KAFKA_FETCH_BUSY_HOLD_S after the last, and with
KAFKA_FETCH_MAX_WAIT_MS when idle, so an idle stack costs no more CPU than before.

A consumer working through a backlog fetches with the idle wait whatever its traffic
(`backlog(True)`): Tansu returns little of a partition's older records per short fetch while
other clients keep it busy, so a gateway restarted in the chaos drill took 14-20 s instead
of about 4 to read back the answer partition it started in the middle of, and in 2 drills
never did within the users' 45 s (docs/reliability.md, "fetch pacing and backlogs").

aiokafka fixes the wait when the consumer is created and has no public way to change it; the
pacer sets its fetcher's `_fetch_max_wait_ms`, which the next fetch request reads. Should a
later aiokafka not have that attribute, the consumer keeps the wait it was created with (the
idle one) and a warning says so once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tidings.common.broker_compat import BrokerCompat
from tidings.common.logging import get_logger
from tidings.common.metrics import FETCH_WAIT
from tidings.common.settings import KafkaSettings

log = get_logger(__name__)

_FETCHER_WAIT = "_fetch_max_wait_ms"


def set_fetch_wait(consumer: Any, wait_ms: int) -> bool:
    """Make the consumer's next fetch requests wait at most `wait_ms`; False if unsupported."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None or not isinstance(getattr(fetcher, _FETCHER_WAIT, None), int):
        return False
    setattr(fetcher, _FETCHER_WAIT, wait_ms)
    return True


class FetchPacer:
    """Switches one consumer between the busy and the idle fetch wait.

    `touch()` on traffic (the responder: a message fetched, an answer finished; the gateway's
    fan-out: a stream opening, an answer event reaching one); `tick()`
    from the consumer's loop, which returns to the idle wait once `hold_s` has passed
    without traffic; `backlog()` while the consumer is far behind the log, which keeps the
    idle wait until it has caught up. `attach()` the consumer once it has started.
    """

    def __init__(
        self,
        *,
        name: str,
        idle_ms: int,
        busy_ms: int,
        hold_s: float,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.enabled = enabled
        self.idle_ms = idle_ms
        self.busy_ms = min(busy_ms, idle_ms) if enabled else idle_ms
        self._hold_s = hold_s
        self._clock = clock
        self._consumer: Any = None
        self._busy_until = float("-inf")
        self._behind = False
        self._wait_ms = idle_ms
        self._unsupported = False
        self._gauge = FETCH_WAIT.labels(consumer=name)
        self._gauge.set(idle_ms / 1000)  # base units: seconds

    @classmethod
    def from_settings(cls, settings: KafkaSettings, *, name: str) -> FetchPacer:
        return cls(
            name=name,
            idle_ms=settings.fetch_max_wait_ms,
            busy_ms=settings.fetch_busy_wait_ms,
            hold_s=settings.fetch_busy_hold_s,
            enabled=BrokerCompat.of(settings).pace_fetches,
        )

    @property
    def wait_ms(self) -> int:
        """The wait the consumer's fetches use now."""
        return self._wait_ms

    @property
    def busy(self) -> bool:
        return self._wait_ms == self.busy_ms and self.busy_ms != self.idle_ms

    def attach(self, consumer: Any) -> None:
        """Pace this (started) consumer from now on, beginning with the current wait."""
        if not self.enabled:
            return
        self._consumer = consumer
        self._apply(self._wait_ms)

    def touch(self) -> None:
        """Traffic: use the busy wait until `hold_s` from now (once caught up)."""
        self._busy_until = self._clock() + self._hold_s
        self._update()

    def tick(self) -> None:
        """Back to the idle wait once the hold has run out."""
        self._update()

    def backlog(self, behind: bool) -> None:
        """Whether the consumer is working through a backlog: the idle wait while it is."""
        self._behind = behind
        self._update()

    def _update(self) -> None:
        busy = not self._behind and self._clock() < self._busy_until
        wait_ms = self.busy_ms if busy else self.idle_ms
        if wait_ms != self._wait_ms:
            self._apply(wait_ms)

    def _apply(self, wait_ms: int) -> None:
        self._wait_ms = wait_ms
        if self._unsupported:
            return
        self._gauge.set(wait_ms / 1000)
        if self._consumer is None:
            return
        if not set_fetch_wait(self._consumer, wait_ms):
            self._unsupported = True
            self._gauge.set(self.idle_ms / 1000)
            log.warning(
                "this aiokafka cannot change a consumer's fetch wait; keeping the idle one",
                consumer=self.name,
                wait_ms=self.idle_ms,
            )
