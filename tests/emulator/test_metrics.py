"""The CloudWatch metrics the emulator publishes for its endpoints, read back from moto's
CloudWatch with botocore's own client (GetMetricData, as a run and any dashboard read them),
and the scale from zero behind HasBacklogWithoutCapacity: calls wait for the first instance."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from bulkinvoke.emulator import EndpointSpec, LocalStack

from .conftest import INPUT_BUCKET, REGION

SCALE_UP_SECONDS = 1.0


@pytest.fixture(scope="module")
def cloudwatch(stack: LocalStack) -> BaseClient:
    return boto3.client("cloudwatch", endpoint_url=stack.cloudwatch_url, region_name=REGION)


def _figures(cloudwatch: BaseClient, endpoint: str, since: datetime) -> dict[str, float]:
    """Each metric's value published since ``since`` (the newest, for the backlog)."""
    names = {
        "backlog": "ApproximateBacklogSize",
        "perinstance": "ApproximateBacklogSizePerInstance",
        "nocapacity": "HasBacklogWithoutCapacity",
        "latency": "ModelLatency",
    }
    queries = [
        {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SageMaker",
                    "MetricName": name,
                    "Dimensions": [{"Name": "EndpointName", "Value": endpoint}]
                    + (
                        [{"Name": "VariantName", "Value": "AllTraffic"}]
                        if name == "ModelLatency"
                        else []
                    ),
                },
                "Period": 60,
                "Stat": "Maximum",
            },
        }
        for query_id, name in names.items()
    ]
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=queries,
        StartTime=since,
        EndTime=datetime.now(UTC) + timedelta(seconds=1),
    )
    return {r["Id"]: r["Values"][0] for r in answer["MetricDataResults"] if r["Values"]}


def _next_second() -> datetime:
    """A start time after every datapoint published so far (CloudWatch counts whole seconds)."""
    time.sleep(1.05)
    return datetime.now(UTC).replace(microsecond=0)


def test_a_backlog_without_instances_is_published_then_worked_off_after_the_scale_up(
    stack: LocalStack, s3: Any, runtime: BaseClient, cloudwatch: BaseClient
) -> None:
    stack.add_endpoint(
        EndpointSpec(
            "from-zero",
            "s3://emu-out/from-zero",
            instances=0,
            scale_up_seconds=SCALE_UP_SECONDS,
        )
    )
    stack.configure(latency="0.05")
    try:
        since = _next_second()
        started = time.monotonic()
        answers = [
            runtime.invoke_endpoint_async(
                EndpointName="from-zero",
                InputLocation=f"s3://{INPUT_BUCKET}/hello.txt",
                InferenceId=f"zero-{n}",
            )
            for n in range(3)
        ]
        stack.publish_metrics()
        queued = _figures(cloudwatch, "from-zero", since)
        assert queued["backlog"] == 3 and queued["perinstance"] == 3
        assert queued["nocapacity"] == 1
        assert "latency" not in queued  # nothing ran in a model yet
        assert stack.wait_idle(30)
        # Nothing ran before the endpoint had its instance.
        assert time.monotonic() - started >= SCALE_UP_SECONDS
        (spec,) = [e for e in stack.endpoints() if e.name == "from-zero"]
        assert spec.instances == 1
        for answer in answers:
            bucket, key = answer["OutputLocation"].removeprefix("s3://").split("/", 1)
            s3.head_object(Bucket=bucket, Key=key)
        since = _next_second()
        stack.publish_metrics()
        idle = _figures(cloudwatch, "from-zero", since)
        assert idle["backlog"] == 0 and idle["nocapacity"] == 0
        # ModelLatency in microseconds: the configured 0.05 s, and the handler's time.
        assert 50_000 <= idle["latency"] < 500_000
    finally:
        stack.remove_endpoint("from-zero")
        stack.configure(latency="0")


def test_an_endpoint_with_instances_has_its_backlog_shared_among_them(
    stack: LocalStack, s3: Any, runtime: BaseClient, cloudwatch: BaseClient
) -> None:
    stack.add_endpoint(EndpointSpec("two-wide", "s3://emu-out/two-wide", instances=2))
    stack.configure(latency="0.5", workers=1)
    try:
        since = _next_second()
        for n in range(4):
            runtime.invoke_endpoint_async(
                EndpointName="two-wide",
                InputLocation=f"s3://{INPUT_BUCKET}/hello.txt",
                InferenceId=f"wide-{n}",
            )
        stack.publish_metrics()
        figures = _figures(cloudwatch, "two-wide", since)
        assert figures["backlog"] == 4 and figures["perinstance"] == 2
        assert figures["nocapacity"] == 0
    finally:
        stack.configure(latency="0", workers=4)
        assert stack.wait_idle(30)
        stack.remove_endpoint("two-wide")
