"""Counters behind ``GET /_emulator/stats`` and ``LocalStack.stats()``."""

from __future__ import annotations

import threading
from typing import Any

# Call outcomes (at the HTTP front) and job outcomes (in the workers). "failed" counts every
# failure object or error notification, "expired" the failures due to RequestTTLSeconds or
# InvocationTimeoutSeconds among them.
COUNTERS = (
    "accepted",
    "throttled",
    "rejected",
    "unauthenticated",
    "unavailable",
    "internal_failures",
    "completed",
    "failed",
    "expired",
    "notifications",
    "notification_errors",
    "worker_errors",
)
ENDPOINT_COUNTERS = (
    "accepted",
    "throttled",
    "rejected",
    "unavailable",
    "internal_failures",
    "completed",
    "failed",
    "expired",
)


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._endpoints: dict[str, dict[str, int]] = {}
        # Per endpoint: (seconds, invocations) in the model since the metrics last took them.
        self._model_time: dict[str, tuple[float, int]] = {}

    def add_endpoint(self, name: str) -> None:
        with self._lock:
            self._endpoints.setdefault(name, dict.fromkeys(ENDPOINT_COUNTERS, 0))

    def count(self, name: str, endpoint: str | None = None) -> None:
        """Count one event; ``endpoint`` only if it is a declared one (names are not trusted)."""
        with self._lock:
            self._totals[name] += 1
            per_endpoint = self._endpoints.get(endpoint) if endpoint is not None else None
            if per_endpoint is not None and name in per_endpoint:
                per_endpoint[name] += 1

    def model_time(self, endpoint: str, seconds: float) -> None:
        """One invocation spent ``seconds`` in the model (its ModelLatency)."""
        with self._lock:
            total, count = self._model_time.get(endpoint, (0.0, 0))
            self._model_time[endpoint] = (total + seconds, count + 1)

    def take_model_times(self) -> dict[str, tuple[float, int]]:
        """(seconds, invocations) per endpoint since the last call."""
        with self._lock:
            taken, self._model_time = self._model_time, {}
        return taken

    def snapshot(self, **gauges: int) -> dict[str, Any]:
        with self._lock:
            data: dict[str, Any] = dict(self._totals)
            data["endpoints"] = {name: dict(c) for name, c in self._endpoints.items()}
        data["server_errors"] = data["unavailable"] + data["internal_failures"]
        data.update(gauges)
        return data
