"""What a run takes from the endpoint's description: the refusal, the default --max-in-flight
and the dry run's estimates. DescribeEndpoint's parsing is driven by botocore's Stubber (the
emulator's answers are covered in tests/integration/test_endpoint_check.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from bulkinvoke.calls.endpoint import (
    EndpointDescription,
    EndpointNotDescribed,
    EndpointRefused,
    describe_endpoint,
)
from bulkinvoke.request_options import RequestOptions
from bulkinvoke.run.definition import RunOptions
from bulkinvoke.run.endpoint import TTL_SHARE, in_flight_budget, output_directory
from bulkinvoke.run.estimate import estimate

NOW = datetime(2026, 12, 5, tzinfo=UTC)
ASYNC = {"OutputConfig": {"S3OutputPath": "s3://out/p"}, "ClientConfig": {}}


def _described(**changes: Any) -> EndpointDescription:
    base: dict[str, Any] = {
        "name": "ep",
        "status": "InService",
        "asynchronous": True,
        "instances": 2,
        "max_concurrent_per_instance": 4,
    }
    return EndpointDescription(**{**base, **changes})


def _client_answering(endpoint: dict[str, Any] | None, error: str | None = None) -> Any:
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    stubber = Stubber(client)
    if error is not None:
        stubber.add_client_error("describe_endpoint", error, 'Could not find endpoint "x".')
    else:
        answer = {
            "EndpointName": "ep",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep",
            "EndpointStatus": "InService",
            "CreationTime": NOW,
            "LastModifiedTime": NOW,
            "EndpointConfigName": "ep-config",
            **(endpoint or {}),
        }
        stubber.add_response("describe_endpoint", answer)
        stubber.add_client_error("describe_endpoint_config", "AccessDeniedException")
    stubber.activate()
    return client


def test_a_serverless_endpoint_has_no_instance_count() -> None:
    variants = [
        {
            "VariantName": "a",
            "CurrentServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
        }
    ]
    described = describe_endpoint(
        _client_answering({"ProductionVariants": variants, "AsyncInferenceConfig": ASYNC}), "ep"
    )
    assert described.instances is None and described.asynchronous
    # The config could not be read: only shown, so the description stands without it.
    assert described.instance_type is None


def test_instances_are_counted_over_every_variant() -> None:
    variants = [
        {"VariantName": "a", "CurrentInstanceCount": 2},
        {"VariantName": "b", "CurrentInstanceCount": 3},
    ]
    answer = {"ProductionVariants": variants, "AsyncInferenceConfig": ASYNC}
    described = describe_endpoint(_client_answering(answer), "ep")
    assert described.instances == 5 and described.output_path == "s3://out/p"
    assert described.variants == ("a", "b")  # ModelLatency is read per variant


def test_a_missing_endpoint_is_refused_and_a_forbidden_one_unchecked() -> None:
    with pytest.raises(EndpointRefused, match="does not exist"):
        describe_endpoint(_client_answering(None, "ValidationException"), "ep")
    with pytest.raises(EndpointNotDescribed, match="AccessDeniedException"):
        describe_endpoint(_client_answering(None, "AccessDeniedException"), "ep")


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        ({}, None),
        ({"status": "Creating"}, "is Creating, not InService"),
        ({"status": "OutOfService"}, "is OutOfService, not InService"),
        # An update (autoscaling's, too) or a rollback leaves the endpoint taking calls.
        ({"status": "Updating"}, None),
        ({"status": "SystemUpdating"}, None),
        ({"status": "Failed", "failure_reason": "bad image"}, "is Failed (bad image)"),
        ({"asynchronous": False}, "no AsyncInferenceConfig"),
        ({"instances": 0}, None),  # scaled to zero: it scales up when requests are queued
    ],
)
def test_refusal(changes: dict[str, Any], refused: str | None) -> None:
    refusal = _described(**changes).refusal()
    assert refusal is None if refused is None else refused in (refusal or "")


def test_the_in_flight_budget_is_what_the_endpoint_starts_within_half_the_ttl() -> None:
    options = RunOptions("ep", request=RequestOptions(request_ttl_seconds=600))
    assert in_flight_budget(options, _described()) is None  # no --seconds-per-item
    timed = RunOptions("ep", request=RequestOptions(request_ttl_seconds=600), seconds_per_item=3)
    # 8 at once, 600 s / 3 s each: 1,600 could start within the TTL; half of that.
    assert in_flight_budget(timed, _described()) == int(8 * 600 / 3 * TTL_SHARE) == 800
    assert in_flight_budget(timed, _described(max_concurrent_per_instance=None)) is None
    assert in_flight_budget(timed, None) is None
    given = RunOptions("ep", max_in_flight=7, seconds_per_item=3)
    assert in_flight_budget(given, _described()) == 7
    # Never fewer than the endpoint works on at once.
    slow = RunOptions("ep", request=RequestOptions(request_ttl_seconds=60), seconds_per_item=900)
    assert in_flight_budget(slow, _described()) == 8


def test_estimates() -> None:
    assert estimate(100, _described(), None, 1.0) is None
    assert estimate(100, _described(instances=0), 2.0, 1.0) is None
    timed = estimate(100, _described(), 2.0, 3.6)
    assert timed is not None and timed.processing_s == 25.0 and not timed.at_most
    assert timed.cost == pytest.approx(2 * 25.0 / 3600 * 3.6)
    unknown = estimate(100, _described(max_concurrent_per_instance=None), 2.0, None)
    assert unknown is not None and unknown.processing_s == 100.0 and unknown.at_most
    assert unknown.cost is None
    # Without --seconds-per-item, the endpoint's measured ModelLatency; given wins over it.
    measured = estimate(100, _described(), None, None, 4.0)
    assert measured is not None and measured.measured and measured.processing_s == 50.0
    given = estimate(100, _described(), 2.0, None, 4.0)
    assert given is not None and not given.measured and given.seconds_per_item == 2.0


def test_the_output_directory_is_the_output_path_and_the_extension() -> None:
    described = _described(output_path="s3://out/prefix/")
    assert output_directory(described, None) == "s3://out/prefix/"
    assert output_directory(described, "/run-1/part/") == "s3://out/prefix/run-1/part/"
    assert output_directory(_described(output_path="s3://out"), "x") == "s3://out/x/"
    assert output_directory(None, "x") is None
