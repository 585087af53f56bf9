"""The endpoint's CloudWatch metrics, in one ``GetMetricData`` call: the backlog SageMaker
publishes for asynchronous endpoints (``ApproximateBacklogSize``,
``ApproximateBacklogSizePerInstance``, ``HasBacklogWithoutCapacity``, each a minute's figure,
dimension ``EndpointName``) and the model's latency (``ModelLatency``, microseconds, dimensions
``EndpointName`` and ``VariantName``) averaged over the last hours, for the dry run's estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bulkinvoke.aws_protocols import CloudWatchClient
from bulkinvoke.errors import error_code
from bulkinvoke.events import EndpointLoad

NAMESPACE = "AWS/SageMaker"
# SageMaker publishes the backlog once a minute; a figure older than this is no longer "now".
BACKLOG_WINDOW = timedelta(minutes=10)
BACKLOG_PERIOD_S = 60
# The latency the dry run estimates with: the last hours' average, one period.
LATENCY_WINDOW = timedelta(hours=3)
# Every variant's traffic; an endpoint with one variant names it "AllTraffic" by default.
DEFAULT_VARIANT = "AllTraffic"
_LATENCY_ID = "model_latency_"

_BACKLOG_METRICS = {
    "backlog": ("ApproximateBacklogSize", "Average"),
    "per_instance": ("ApproximateBacklogSizePerInstance", "Average"),
    "without_capacity": ("HasBacklogWithoutCapacity", "Maximum"),
}


class MetricsUnavailable(Exception):
    """The metrics could not be read (no permission, no CloudWatch in reach)."""


@dataclass(frozen=True)
class MetricQuery:
    query_id: str
    metric: str
    stat: str
    period_s: int
    dimensions: tuple[tuple[str, str], ...]

    def to_request(self) -> dict[str, object]:
        return {
            "Id": self.query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": self.metric,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
                },
                "Period": self.period_s,
                "Stat": self.stat,
            },
            "ReturnData": True,
        }


def backlog_queries(endpoint: str) -> list[MetricQuery]:
    return [
        MetricQuery(query_id, metric, stat, BACKLOG_PERIOD_S, (("EndpointName", endpoint),))
        for query_id, (metric, stat) in _BACKLOG_METRICS.items()
    ]


def latency_query(endpoint: str, variant: str, index: int) -> MetricQuery:
    return MetricQuery(
        f"{_LATENCY_ID}{index}",
        "ModelLatency",
        "Average",
        int(LATENCY_WINDOW.total_seconds()),
        (("EndpointName", endpoint), ("VariantName", variant)),
    )


def read_endpoint_load(
    client: CloudWatchClient,
    endpoint: str,
    *,
    now: datetime | None = None,
    latency_of: Sequence[str] = (),
) -> EndpointLoad:
    """The endpoint's latest backlog figures, and the recent model latency (the mean over the
    variants named in ``latency_of``): one GetMetricData call. Raises MetricsUnavailable if
    CloudWatch cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    now = now or datetime.now(UTC)
    queries = backlog_queries(endpoint) + [
        latency_query(endpoint, variant, index) for index, variant in enumerate(latency_of)
    ]
    window = LATENCY_WINDOW if latency_of else BACKLOG_WINDOW
    try:
        answer = client.get_metric_data(
            MetricDataQueries=[query.to_request() for query in queries],
            StartTime=now - window,
            EndTime=now,
            ScanBy="TimestampDescending",
        )
    except ClientError as error:
        raise MetricsUnavailable(f"GetMetricData: {error_code(error) or error}") from None
    except BotoCoreError as error:
        raise MetricsUnavailable(f"GetMetricData: {error}") from None
    latest = {result["Id"]: _latest(result, now) for result in answer["MetricDataResults"]}
    without_capacity = latest.get("without_capacity")
    latencies = [v for k, v in latest.items() if k.startswith(_LATENCY_ID) and v is not None]
    model_latency_us = sum(latencies) / len(latencies) if latencies else None
    return EndpointLoad(
        backlog=latest.get("backlog"),
        backlog_per_instance=latest.get("per_instance"),
        without_capacity=None if without_capacity is None else without_capacity >= 1,
        model_latency_s=None if model_latency_us is None else model_latency_us / 1e6,
    )


def _latest(result: Mapping[str, Any], now: datetime) -> float | None:
    """The newest value of one query's result; a backlog figure only within BACKLOG_WINDOW."""
    pairs = sorted(
        zip(result.get("Timestamps") or [], result.get("Values") or [], strict=True),
        reverse=True,
    )
    if not pairs:
        return None
    stamp, value = pairs[0]
    if not result["Id"].startswith(_LATENCY_ID) and now - stamp > BACKLOG_WINDOW:
        return None
    return float(value)
