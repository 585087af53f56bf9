"""How many calls to keep in progress for ``--rate`` when ``--concurrency`` is not given.

Little's law: calls in progress = rate x latency. The latency of a call slot (its call, retries
included, and the wait for its answer to be durable) is learned as the run goes, as a moving
average; the slots are that times the rate, with a quarter more for the latency's spread, and
at most ``maximum``. Until a call has come back, ``initial`` slots are used.
"""

from __future__ import annotations

import math
import threading

# Calls in progress without --concurrency, and the most sized for --rate.
DEFAULT_CONCURRENCY = 16
SIZED_MAXIMUM = 256
HEADROOM = 1.25
# Each sample moves the average this much of the way: a few dozen calls set it.
WEIGHT = 0.05


class SlotSizer:
    def __init__(self, rate: float, *, initial: int, maximum: int) -> None:
        self._rate = rate
        self._initial = initial
        self._maximum = maximum
        self._latency: float | None = None
        self._lock = threading.Lock()

    def observe(self, latency_s: float) -> None:
        """One call slot's time for one call (from any thread)."""
        with self._lock:
            if self._latency is None:
                self._latency = latency_s
            else:
                self._latency += WEIGHT * (latency_s - self._latency)

    @property
    def latency_s(self) -> float | None:
        return self._latency

    def slots(self) -> int:
        latency = self._latency
        if latency is None:
            return min(self._initial, self._maximum)
        return max(1, min(self._maximum, math.ceil(self._rate * latency * HEADROOM) + 1))
