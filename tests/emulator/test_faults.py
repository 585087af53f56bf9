"""Capacity, injected faults, failure objects and expiry."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import RetryContext, RetryEventAdapter, ThrottlingErrorDetector

from bulkinvoke.emulator import EmulatorConfig, EndpointSpec, LocalStack, start_local_stack
from tests.emulator.conftest import (
    CREDENTIALS,
    INPUT_BUCKET,
    REGION,
    object_exists,
    read_object,
)

GOOD_INPUT = f"s3://{INPUT_BUCKET}/hello.txt"


def _call(runtime: BaseClient, **kwargs: Any) -> dict[str, Any]:
    """The response, or the error response of a refused call."""
    try:
        return runtime.invoke_endpoint_async(**{"EndpointName": "main", **kwargs})
    except ClientError as error:
        return error.response


def test_throttling_above_capacity(
    stack: LocalStack, runtime: BaseClient, knobs: Callable[..., None]
) -> None:
    knobs(capacity_per_second=5)
    before = stack.stats()
    responses = [_call(runtime, InputLocation=GOOD_INPUT) for _ in range(30)]
    codes = [r.get("Error", {}).get("Code") for r in responses]
    throttled = [r for r in responses if "Error" in r]
    assert 5 <= codes.count(None) < 30
    assert set(codes) == {None, "ThrottlingException"}
    assert throttled[0]["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert throttled[0]["Error"]["Message"] == "Rate exceeded"
    after = stack.stats()
    assert after["throttled"] - before["throttled"] == len(throttled)
    assert after["endpoints"]["main"]["throttled"] - before["endpoints"]["main"]["throttled"] == (
        len(throttled)
    )


def test_botocore_treats_throttling_as_throttling(
    stack: LocalStack, runtime: BaseClient, knobs: Callable[..., None]
) -> None:
    knobs(capacity_per_second=0.01)  # one call, then nothing for 100 s
    _call(runtime, InputLocation=GOOD_INPUT)
    response = _call(runtime, InputLocation=GOOD_INPUT)
    assert response["Error"]["Code"] == "ThrottlingException"
    context = RetryContext(
        attempt_number=1,
        operation_model=runtime.meta.service_model.operation_model("InvokeEndpointAsync"),
        parsed_response=response,
    )
    assert ThrottlingErrorDetector(RetryEventAdapter()).is_throttling_error_from_context(context)
    # And standard retry mode retries it.
    retrying = boto3.client(
        "sagemaker-runtime",
        endpoint_url=stack.sagemaker_url,
        region_name=REGION,
        config=Config(retries={"mode": "standard", "total_max_attempts": 2}),
    )
    with pytest.raises(ClientError) as caught:
        retrying.invoke_endpoint_async(EndpointName="main", InputLocation=GOOD_INPUT)
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 1


@pytest.mark.parametrize(
    ("knob", "status", "code", "counter"),
    [
        ("unavailable_probability", 503, "ServiceUnavailable", "unavailable"),
        ("internal_failure_probability", 500, "InternalFailure", "internal_failures"),
    ],
)
def test_injected_server_errors(
    stack: LocalStack,
    runtime: BaseClient,
    knobs: Callable[..., None],
    knob: str,
    status: int,
    code: str,
    counter: str,
) -> None:
    knobs(**{knob: 1.0})
    before = stack.stats()
    response = _call(runtime, InputLocation=GOOD_INPUT)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["Error"]["Code"] == code
    after = stack.stats()
    assert after[counter] == before[counter] + 1
    assert after["server_errors"] == before["server_errors"] + 1


def test_fault_probability_is_a_rate(
    stack: LocalStack, runtime: BaseClient, knobs: Callable[..., None]
) -> None:
    knobs(unavailable_probability=0.5, seed=3)
    codes = [
        _call(runtime, InputLocation=GOOD_INPUT).get("Error", {}).get("Code") for _ in range(60)
    ]
    assert 10 < codes.count("ServiceUnavailable") < 50


def test_model_failure_writes_failure_object(
    stack: LocalStack, runtime: BaseClient, s3: BaseClient, knobs: Callable[..., None]
) -> None:
    knobs(model_failure_probability=1.0)
    before = stack.stats()
    response = _call(runtime, InputLocation=GOOD_INPUT, Filename="model-fails.out")
    assert stack.wait_idle(10)
    failure = read_object(s3, response["FailureLocation"])
    assert response["FailureLocation"] == "s3://emu-fail/errors/model-fails-error.out"
    assert failure["body"].startswith(b"ModelError: injected model failure")
    assert failure["content_type"] == "text/plain"
    assert not object_exists(s3, response["OutputLocation"])
    assert stack.stats()["failed"] == before["failed"] + 1


def test_handler_exception_writes_failure_object(
    stack: LocalStack, runtime: BaseClient, s3: BaseClient
) -> None:
    response = _call(runtime, EndpointName="picky", InputLocation=f"s3://{INPUT_BUCKET}/fail.txt")
    assert stack.wait_idle(10)
    body = read_object(s3, response["FailureLocation"])["body"]
    assert body == b"ModelError: RuntimeError: picky model refuses this input"


def test_missing_input_fails_by_default(
    stack: LocalStack, runtime: BaseClient, s3: BaseClient
) -> None:
    response = _call(runtime, InputLocation=f"s3://{INPUT_BUCKET}/absent.txt")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert stack.wait_idle(10)
    body = read_object(s3, response["FailureLocation"])["body"].decode()
    assert (
        body
        == f"ClientError: could not read the input at s3://{INPUT_BUCKET}/absent.txt (NoSuchKey)."
    )


def test_missing_input_rejected_at_call_time(
    stack: LocalStack, runtime: BaseClient, knobs: Callable[..., None]
) -> None:
    knobs(missing_input="reject")
    response = _call(runtime, InputLocation=f"s3://{INPUT_BUCKET}/absent.txt")
    assert response["Error"]["Code"] == "ValidationError"
    assert f"s3://{INPUT_BUCKET}/absent.txt" in response["Error"]["Message"]
    assert "Error" not in _call(runtime, InputLocation=GOOD_INPUT)


@pytest.fixture
def slow_stack(stack: LocalStack) -> Iterator[LocalStack]:
    """A second endpoint server on the suite's moto: one worker, 2 s per call, time x 0.05
    (wide margins: a loaded machine adds to every wait)."""
    config = EmulatorConfig(workers=1, latency="2", time_scale=0.05, credentials=CREDENTIALS)
    endpoints = [EndpointSpec("slow", "s3://emu-out/slow", "s3://emu-fail/slow")]
    with start_local_stack(endpoints, config, s3_url=stack.s3_url) as running:
        yield running


def test_request_ttl_expiry(slow_stack: LocalStack, s3: BaseClient) -> None:
    runtime = boto3.client("sagemaker-runtime", endpoint_url=slow_stack.sagemaker_url)
    # RequestTTLSeconds=60 is 3 s here: the second call waits 2 s for the only worker (in
    # time), the third 4 s (expired).
    responses = [
        runtime.invoke_endpoint_async(
            EndpointName="slow", InputLocation=GOOD_INPUT, RequestTTLSeconds=60
        )
        for _ in range(3)
    ]
    assert slow_stack.wait_idle(10)
    outcomes = [object_exists(s3, r["OutputLocation"]) for r in responses]
    assert outcomes == [True, True, False]
    failure = read_object(s3, responses[2]["FailureLocation"])["body"].decode()
    assert failure.startswith("Request expired: it waited ")
    assert "RequestTTLSeconds (60s, 3s at time_scale 0.05)" in failure
    stats = slow_stack.stats()
    assert (stats["completed"], stats["failed"], stats["expired"]) == (2, 1, 1)


def test_invocation_timeout(slow_stack: LocalStack, s3: BaseClient) -> None:
    runtime = boto3.client("sagemaker-runtime", endpoint_url=slow_stack.sagemaker_url)
    response = runtime.invoke_endpoint_async(
        EndpointName="slow", InputLocation=GOOD_INPUT, InvocationTimeoutSeconds=10
    )  # 10 s at time_scale 0.05 = 0.5 s, less than the 2 s latency
    assert slow_stack.wait_idle(10)
    failure = read_object(s3, response["FailureLocation"])["body"].decode()
    assert failure.startswith("Invocation timed out")
    assert not object_exists(s3, response["OutputLocation"])
    stats = slow_stack.stats()
    assert (stats["failed"], stats["expired"]) == (1, 1)


def _admin(stack: LocalStack, path: str, data: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        stack.sagemaker_url + path,
        data=None if data is None else json.dumps(data).encode(),
        method="GET" if data is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_admin_api(stack: LocalStack, knobs: Callable[..., None]) -> None:
    status, config = _admin(stack, "/_emulator/config")
    assert status == 200 and config["workers"] == 4 and config["latency"] == "fixed:0"
    status, config = _admin(
        stack, "/_emulator/config", {"latency": "uniform:0-0.01", "capacity_per_second": 1000}
    )
    assert status == 200 and config["latency"] == "uniform:0-0.01"
    assert stack.config.capacity_per_second == 1000
    status, error = _admin(stack, "/_emulator/config", {"workers": 0})
    assert status == 400 and "workers" in error["message"]
    # Seconds as a number are a fixed latency; anything else but text is refused, not kept
    # for the workers to trip over.
    status, config = _admin(stack, "/_emulator/config", {"latency": 0.002})
    assert status == 200 and config["latency"] == "fixed:0.002"
    status, error = _admin(stack, "/_emulator/config", {"network_latency": [1]})
    assert status == 400 and "network_latency must be seconds" in error["message"]
    status, error = _admin(stack, "/_emulator/config", {"colour": "blue"})
    assert status == 400 and "colour" in error["message"]
    status, stats = _admin(stack, "/_emulator/stats")
    assert status == 200
    assert {"accepted", "throttled", "rejected", "server_errors", "completed", "failed"} <= set(
        stats
    )
    assert {"queue_depth", "in_progress", "workers"} <= set(stats)
    assert set(stats["endpoints"]) >= {"main", "nofail", "picky"}
    assert _admin(stack, "/_emulator/nothing")[0] == 404


def test_admin_adds_endpoint(stack: LocalStack, runtime: BaseClient, s3: BaseClient) -> None:
    spec = {"name": "added", "output_path": "s3://emu-added/out"}
    status, _ = _admin(stack, "/_emulator/endpoints", spec)
    assert status == 200
    assert "emu-added" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "Error" not in _call(runtime, EndpointName="added", InputLocation=GOOD_INPUT)
    status, endpoints = _admin(stack, "/_emulator/endpoints")
    assert spec | {"failure_path": None} in [
        {k: e[k] for k in ("name", "output_path", "failure_path")} for e in endpoints
    ]
    status, error = _admin(stack, "/_emulator/endpoints", {"name": "bad_name", "output_path": "x"})
    assert status == 400 and "bad_name" in error["message"]


def test_workers_resize_at_run_time(stack: LocalStack, knobs: Callable[..., None]) -> None:
    knobs(workers=2)
    deadline = time.monotonic() + 5
    while stack.stats()["workers"] != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.stats()["workers"] == 2
    knobs(workers=6)
    assert stack.stats()["workers"] == 6
