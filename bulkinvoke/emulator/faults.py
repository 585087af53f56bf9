"""Capacity limit and injected faults: what goes wrong, decided by one seeded generator."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Literal

from bulkinvoke.emulator.config import EmulatorConfig, Latency

CallFault = Literal["throttled", "unavailable", "internal"]


class TokenBucket:
    """``rate`` calls per second with a burst of one second's worth (at least one call)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._burst = max(rate, 1.0)
        self._tokens = self._burst
        self._clock = clock
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Faults:
    """Draws every random outcome; thread-safe, reproducible with a seed and one thread."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(config.seed)
        self._seed = config.seed
        self._bucket = self._new_bucket(config)

    @staticmethod
    def _new_bucket(config: EmulatorConfig) -> TokenBucket | None:
        rate = config.capacity_per_second
        return TokenBucket(rate) if rate is not None else None

    def reconfigure(self, config: EmulatorConfig) -> None:
        with self._lock:
            if config.seed != self._seed:
                self._seed = config.seed
                self._rng.seed(config.seed)
            current = self._bucket.rate if self._bucket is not None else None
            if config.capacity_per_second != current:
                self._bucket = self._new_bucket(config)

    def call_fault(self, config: EmulatorConfig) -> CallFault | None:
        """What happens to a valid call: throttled above capacity, else a random 503 or 500."""
        with self._lock:
            if self._bucket is not None and not self._bucket.take():
                return "throttled"
            if config.unavailable_probability and (
                self._rng.random() < config.unavailable_probability
            ):
                return "unavailable"
            if config.internal_failure_probability and (
                self._rng.random() < config.internal_failure_probability
            ):
                return "internal"
        return None

    def model_fails(self, probability: float) -> bool:
        if not probability:
            return False
        with self._lock:
            return self._rng.random() < probability

    def latency(self, latency: Latency) -> float:
        with self._lock:
            return latency.sample(self._rng)
