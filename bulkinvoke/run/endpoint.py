"""The endpoint looked at before a session sends (``--check-endpoint``, the default), and what
the run takes from it: the default ``--max-in-flight`` and where outputs land (the dry run's
estimates from it: ``run/estimate.py``)."""

from __future__ import annotations

import math

from bulkinvoke.calls.aws import Clients
from bulkinvoke.calls.endpoint import (
    IN_SERVICE,
    EndpointDescription,
    EndpointNotDescribed,
    EndpointRefused,
    describe_endpoint,
)
from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.run.definition import RunOptions
from bulkinvoke.run.work import DEFAULT_REQUEST_TTL_SECONDS

# The share of what the endpoint could start within the request TTL that may be queued: the
# rest is margin for a slower model or fewer instances than described.
TTL_SHARE = 0.5


def look_at_endpoint(
    clients: Clients, options: RunOptions, subscribers: Subscribers
) -> EndpointDescription | None:
    """The endpoint as described, None if it was not checked; raises EndpointRefused for one
    that cannot take the run's calls."""
    if not options.check_endpoint:
        return None
    try:
        description = describe_endpoint(clients.sagemaker, options.endpoint)
    except EndpointNotDescribed as reason:
        subscribers.notice(
            NoticeLevel.WARNING,
            f"endpoint {options.endpoint} was not checked before sending ({reason}); "
            "--no-check-endpoint skips the check",
        )
        return None
    refusal = description.refusal()
    if refusal is not None:
        raise EndpointRefused(refusal)
    if description.status != IN_SERVICE:
        subscribers.notice(
            NoticeLevel.INFO,
            f"endpoint {options.endpoint} is {description.status}: it takes calls meanwhile",
        )
    if description.instances == 0:
        subscribers.notice(
            NoticeLevel.INFO,
            f"endpoint {options.endpoint} has 0 instances: it scales up once requests are queued "
            "(often some minutes), and results come after that",
        )
    return description


def in_flight_budget(options: RunOptions, description: EndpointDescription | None) -> int | None:
    """``--max-in-flight``, else what the endpoint can start within the request TTL (half of it:
    ``TTL_SHARE``) when its concurrency and ``--seconds-per-item`` are known: queued beyond that,
    items would expire before a worker took them. None: no cap."""
    if options.max_in_flight is not None:
        return options.max_in_flight
    concurrent = description.concurrent_invocations if description else None
    if not concurrent or options.seconds_per_item is None:
        return None
    ttl = options.request.request_ttl_seconds or DEFAULT_REQUEST_TTL_SECONDS
    return max(concurrent, math.floor(concurrent * ttl * TTL_SHARE / options.seconds_per_item))


def output_directory(description: EndpointDescription | None, extension: str | None) -> str | None:
    """Where the run's outputs land: the endpoint's S3OutputPath with ``--output-path-extension``
    appended (``s3://bucket/prefix/``), known before any call is answered."""
    if description is None or description.output_path is None:
        return None
    parts = [description.output_path.rstrip("/"), *([extension.strip("/")] if extension else [])]
    return "/".join(parts) + "/"
