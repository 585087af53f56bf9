"""The emulator's pure parts: latency, token bucket, locations, notification messages."""

from __future__ import annotations

import random

import pytest

from bulkinvoke.emulator import EmulatorConfig, EndpointSpec, Latency
from bulkinvoke.emulator.faults import TokenBucket
from bulkinvoke.emulator.jobs import new_job, object_address
from bulkinvoke.emulator.notifications import inference_result
from bulkinvoke.emulator.wire import parse_invocation


@pytest.mark.parametrize(
    ("text", "latency"),
    [
        ("0", Latency()),
        ("0.25", Latency("fixed", 0.25)),
        ("fixed:1", Latency("fixed", 1.0)),
        ("uniform:0.1-0.5", Latency("uniform", 0.1, 0.5)),
        ("exp:0.2", Latency("exponential", 0.2)),
        ("exponential:0.2", Latency("exponential", 0.2)),
    ],
)
def test_latency_parse(text: str, latency: Latency) -> None:
    assert Latency.parse(text) == latency
    assert Latency.parse(str(latency)) == latency


@pytest.mark.parametrize("text", ["soon", "uniform:0.5-0.1", "gamma:1", "-1", "uniform:1"])
def test_latency_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        Latency.parse(text)


def test_latency_samples() -> None:
    rng = random.Random(1)
    assert Latency("fixed", 0.3).sample(rng) == 0.3
    assert all(0.1 <= Latency("uniform", 0.1, 0.2).sample(rng) <= 0.2 for _ in range(100))
    mean = sum(Latency("exponential", 0.5).sample(rng) for _ in range(4000)) / 4000
    assert 0.45 < mean < 0.55


def test_config_validation() -> None:
    assert EmulatorConfig(latency="uniform:0-1").latency == Latency("uniform", 0, 1)
    for bad in ({"workers": 0}, {"unavailable_probability": 2}, {"missing_input": "skip"}):
        with pytest.raises(ValueError):
            EmulatorConfig(**bad)
    with pytest.raises(ValueError, match="unknown setting"):
        EmulatorConfig().with_changes({"speed": 1})


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] = 0.5
    assert [bucket.take() for _ in range(2)] == [True, False]
    now[0] = 10.0  # the burst stays one second's worth
    assert [bucket.take() for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    ("location", "address"),
    [
        ("s3://b/k/x.json", ("b", "k/x.json")),
        ("https://b.s3.amazonaws.com/k/x.json", ("b", "k/x.json")),
        ("https://my.bucket.s3.eu-west-1.amazonaws.com/a%20b", ("my.bucket", "a b")),
        ("https://s3.us-east-1.amazonaws.com/b/k", ("b", "k")),
    ],
)
def test_object_address(location: str, address: tuple[str, str]) -> None:
    assert object_address(location) == address


def test_object_address_refuses_other_hosts() -> None:
    with pytest.raises(ValueError):
        object_address("https://example.com/b/k")


def _request(**headers: str) -> dict[str, str]:
    return {"authorization": "x", **{f"x-amzn-sagemaker-{k}": v for k, v in headers.items()}}


def test_job_locations() -> None:
    spec = EndpointSpec("ep", "s3://out-b/p/", "s3://fail-b")
    request = parse_invocation(
        "ep",
        _request(inputlocation="s3://in/k", filename="a.json", s3outputpathextension="/x/y/"),
        b"",
    )
    job = new_job(request, spec, 0.0, 0.0)
    assert job.output_location == "s3://out-b/p/x/y/a.json"
    assert job.failure_location == "s3://fail-b/x/y/a-error.out"
    no_dot = parse_invocation("ep", _request(inputlocation="s3://in/k", filename="abc"), b"")
    assert new_job(no_dot, spec, 0.0, 0.0).failure_location == "s3://fail-b/abc-error.out"


def test_failure_message_without_failure_path() -> None:
    request = parse_invocation("ep", {}, b"payload")
    job = new_job(request, EndpointSpec("ep", "s3://out-b"), 0.0, 0.0)
    message = inference_result(job, region="eu-west-1", event_time=1.5, failure_reason="boom")
    assert message["receivedTime"] == "1970-01-01T00:00:00.000Z"
    assert message["eventTime"] == "1970-01-01T00:00:01.500Z"
    assert message["requestParameters"] == {"endpointName": "ep"}
    assert "responseParameters" not in message
    assert message["failureReason"] == "boom"
