"""One emulator stack for the whole suite: moto plus the endpoint server, on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config

from bulkinvoke.emulator import EmulatorConfig, EndpointSpec, LocalStack, start_local_stack

REGION = "us-east-1"
ACCOUNT = "123456789012"
SUCCESS_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:emu-success"
ERROR_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:emu-errors"
INPUT_BUCKET = "emu-in"
INPUTS = {
    "hello.txt": b"hello world",
    "data.json": b'{"x": 1}',
    "fail.txt": b"fail me",
}
ENDPOINTS = [
    EndpointSpec(
        "main",
        "s3://emu-out/results",
        "s3://emu-fail/errors",
        success_topic=SUCCESS_TOPIC,
        error_topic=ERROR_TOPIC,
    ),
    EndpointSpec("nofail", "s3://emu-out/nofail"),
    EndpointSpec(
        "picky",
        "s3://emu-out/picky",
        "s3://emu-fail/picky",
        handler="tests.emulator.handlers:picky",
    ),
    EndpointSpec("plain", "s3://emu-out/plain", handler="tests.emulator.handlers:plain"),
]
CREDENTIALS = {"testing": "testing"}
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@pytest.fixture(scope="session", autouse=True)
def fake_aws_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_ENV.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
            patch.delenv(name, raising=False)
        # No shared config or credentials file of the developer's may leak in.
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        yield


@pytest.fixture(scope="session")
def stack(fake_aws_environment: None) -> Iterator[LocalStack]:
    with start_local_stack(
        ENDPOINTS, EmulatorConfig(workers=4, seed=7, credentials=CREDENTIALS)
    ) as running:
        yield running


@pytest.fixture(scope="session")
def s3(stack: LocalStack) -> BaseClient:
    client = boto3.client("s3", endpoint_url=stack.s3_url, region_name=REGION)
    client.create_bucket(Bucket=INPUT_BUCKET)
    for key, body in INPUTS.items():
        client.put_object(Bucket=INPUT_BUCKET, Key=key, Body=body)
    return client


@pytest.fixture(scope="session")
def runtime(stack: LocalStack, s3: BaseClient) -> BaseClient:
    """A client that sends what it is given (no client-side validation) and never retries."""
    config = Config(parameter_validation=False, retries={"total_max_attempts": 1})
    return boto3.client(
        "sagemaker-runtime", endpoint_url=stack.sagemaker_url, region_name=REGION, config=config
    )


@pytest.fixture
def knobs(stack: LocalStack) -> Iterator[Callable[..., None]]:
    """``stack.configure``, with the settings put back (once the queue drains) after the test."""
    before = stack.config.to_json()
    yield stack.configure
    assert stack.wait_idle(20)
    stack.configure(**before)


def read_object(s3: BaseClient, location: str) -> dict[str, Any]:
    bucket, key = location.removeprefix("s3://").split("/", 1)
    response = s3.get_object(Bucket=bucket, Key=key)
    return {"body": response["Body"].read(), "content_type": response.get("ContentType")}


def object_exists(s3: BaseClient, location: str) -> bool:
    bucket, key = location.removeprefix("s3://").split("/", 1)
    return s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) > 0
