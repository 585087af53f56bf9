"""The endpoint metrics SageMaker publishes to CloudWatch, published by the emulator to moto's
CloudWatch (namespace ``AWS/SageMaker``): for asynchronous endpoints ``ApproximateBacklogSize``,
``ApproximateBacklogSizePerInstance`` and ``HasBacklogWithoutCapacity`` (dimension
``EndpointName``), and ``ModelLatency`` in microseconds (dimensions ``EndpointName`` and
``VariantName``), every ``EmulatorConfig.metrics_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bulkinvoke.emulator.clients import Clients
from bulkinvoke.emulator.config import EmulatorConfig, EndpointSpec
from bulkinvoke.emulator.control import VARIANT
from bulkinvoke.emulator.stats import Stats

log = logging.getLogger(__name__)
NAMESPACE = "AWS/SageMaker"
_TICK_SECONDS = 0.1


def backlog(counters: dict[str, int]) -> int:
    """Requests accepted and not yet finished: queued or in the model."""
    return max(counters["accepted"] - counters["completed"] - counters["failed"], 0)


def metric_data(
    spec: EndpointSpec, queued: int, model_time: tuple[float, int] | None, at: datetime
) -> list[dict[str, Any]]:
    """One endpoint's datapoints for PutMetricData."""
    endpoint = [{"Name": "EndpointName", "Value": spec.name}]

    def datum(name: str, value: float, unit: str, dimensions: list[dict[str, str]]) -> Any:
        return {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": at,
            "Value": value,
            "Unit": unit,
        }

    data = [
        datum("ApproximateBacklogSize", queued, "Count", endpoint),
        datum(
            "ApproximateBacklogSizePerInstance", queued / max(spec.instances, 1), "Count", endpoint
        ),
        datum(
            "HasBacklogWithoutCapacity", int(queued > 0 and spec.instances == 0), "Count", endpoint
        ),
    ]
    if model_time is not None and model_time[1]:
        seconds, invocations = model_time
        variant = [*endpoint, {"Name": "VariantName", "Value": VARIANT}]
        data.append(datum("ModelLatency", seconds / invocations * 1e6, "Microseconds", variant))
    return data


class MetricsPublisher:
    def __init__(
        self,
        config: Callable[[], EmulatorConfig],
        endpoints: Callable[[], list[EndpointSpec]],
        clients: Clients,
        stats: Stats,
        stopping: threading.Event,
    ) -> None:
        self._config = config
        self._endpoints = endpoints
        self._clients = clients
        self._stats = stats
        self._stopping = stopping
        self._thread = threading.Thread(target=self._run, name="emulator-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def publish(self) -> None:
        """Every endpoint's metrics, as of now."""
        counters = self._stats.snapshot()["endpoints"]
        model_times = self._stats.take_model_times()
        at = datetime.now(UTC)
        for spec in self._endpoints():
            if spec.name not in counters:
                continue
            data = metric_data(spec, backlog(counters[spec.name]), model_times.get(spec.name), at)
            self._clients.cloudwatch().put_metric_data(Namespace=NAMESPACE, MetricData=data)

    def _run(self) -> None:
        last = time.monotonic()
        # Woken often, so that a new metrics_seconds takes effect at once, not after the old.
        while not self._stopping.wait(_TICK_SECONDS):
            interval = self._config().metrics_seconds
            if not interval or time.monotonic() - last < interval:
                continue
            last = time.monotonic()
            try:
                self.publish()
            except Exception:
                # moto gone or refusing: the endpoint keeps serving, as SageMaker's would.
                log.exception("publishing the endpoint metrics failed")
