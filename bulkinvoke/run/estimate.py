"""The dry run's estimate of the endpoint's time over the items to send, and of its instances'
cost meanwhile: from ``--seconds-per-item``, else the endpoint's measured ModelLatency."""

from __future__ import annotations

from dataclasses import dataclass

from bulkinvoke.calls.aws import Clients
from bulkinvoke.calls.endpoint import EndpointDescription
from bulkinvoke.calls.metrics import DEFAULT_VARIANT, MetricsUnavailable, read_endpoint_load
from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.run.definition import RunOptions


def measured_seconds_per_item(
    clients: Clients,
    options: RunOptions,
    description: EndpointDescription | None,
    subscribers: Subscribers,
) -> float | None:
    """Without ``--seconds-per-item``: the endpoint's own ModelLatency over the last hours
    (CloudWatch, one GetMetricData call), None if it has none or it cannot be read."""
    if options.seconds_per_item is not None or description is None:
        return None
    if not options.endpoint_metrics_seconds:
        return None
    try:
        variants = description.variants or (DEFAULT_VARIANT,)
        load = read_endpoint_load(clients.cloudwatch, options.endpoint, latency_of=variants)
    except MetricsUnavailable as reason:
        subscribers.notice(
            NoticeLevel.WARNING,
            f"endpoint {options.endpoint}'s ModelLatency was not read ({reason}); "
            "--seconds-per-item gives the estimate",
        )
        return None
    return load.model_latency_s


@dataclass(frozen=True)
class Estimate:
    """How long the endpoint will take over ``items`` and what its instances cost meanwhile."""

    processing_s: float
    # True when the endpoint's concurrency per instance is unknown and taken as 1.
    at_most: bool
    cost: float | None
    seconds_per_item: float
    # The endpoint's ModelLatency rather than --seconds-per-item.
    measured: bool


def estimate(
    items: int,
    description: EndpointDescription | None,
    seconds_per_item: float | None,
    price_per_instance_hour: float | None,
    measured_seconds_per_item: float | None = None,
) -> Estimate | None:
    """From ``--seconds-per-item`` (else the measured latency) and the instances described;
    None without them."""
    measured = seconds_per_item is None and measured_seconds_per_item is not None
    seconds_per_item = measured_seconds_per_item if measured else seconds_per_item
    if seconds_per_item is None or description is None or not description.instances:
        return None
    per_instance = description.max_concurrent_per_instance
    concurrent = description.instances * (per_instance or 1)
    processing = items * seconds_per_item / concurrent
    cost = (
        description.instances * processing / 3600 * price_per_instance_hour
        if price_per_instance_hour is not None
        else None
    )
    return Estimate(processing, per_instance is None, cost, seconds_per_item, measured)
