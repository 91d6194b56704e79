"""A circuit breaker per backend: stop calling one that keeps failing, probe it later.

closed     calls go through; `failures` consecutive failures open the circuit.
open       calls are skipped (the next backend or the fallback text answers at once,
           instead of every user waiting for a timeout) until `reset_s` have passed.
half-open  one probe call goes through; success closes the circuit, failure opens it again.
"""

from __future__ import annotations

import time
from enum import IntEnum

from tidings.common.logging import get_logger
from tidings.responder import metrics
from tidings.responder.coalesce import Clock

log = get_logger(__name__)


class CircuitState(IntEnum):
    """A breaker's state; the `state` label of `tidings_responder_llm_circuit_state`."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """The state of one backend's circuit."""

    def __init__(
        self, name: str, *, failures: int, reset_s: float, clock: Clock = time.monotonic
    ) -> None:
        self.name = name
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state = CircuitState.CLOSED
        self._probing = False
        self._publish()

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose reset time passed reads as half-open."""
        if self._state is CircuitState.OPEN and self._clock() - self._opened_at >= self._reset_s:
            self._set(CircuitState.HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """May a call go through now? In half-open state only one probe at a time."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        """The call produced an answer."""
        self._failures = 0
        self._probing = False
        if self._state is not CircuitState.CLOSED:
            log.info("LLM backend recovered; circuit closed", backend=self.name)
            self._set(CircuitState.CLOSED)

    def release(self) -> None:
        """The call ended without a verdict (cancelled): let another probe through."""
        self._probing = False

    def failure(self) -> None:
        """The call failed."""
        self._failures += 1
        probing, self._probing = self._probing, False
        if probing or (self._state is CircuitState.CLOSED and self._failures >= self._threshold):
            log.warning(
                "LLM backend keeps failing; circuit open",
                backend=self.name,
                failures=self._failures,
                retry_in_s=self._reset_s,
            )
            self._opened_at = self._clock()
            self._set(CircuitState.OPEN)

    def _set(self, state: CircuitState) -> None:
        self._state = state
        self._publish()

    def _publish(self) -> None:
        # One series per state, 1 for the current one: `== 1` selects it in PromQL and
        # dashboards need no value mapping.
        for state in CircuitState:
            metrics.CIRCUIT_STATE.labels(backend=self.name, state=state.name.lower()).set(
                1 if state is self._state else 0
            )
