"""Real servers on loopback for end-to-end tests: the emulator and moto's S3, in this process,
reached by `bulkinvoke` subprocesses exactly as a user's shell would reach them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkinvoke.emulator import EndpointSpec, LocalStack
from tests.loopback import Dataset, reset_faults, s3_client, serve_stack, upload_dataset

__all__ = ["Dataset"]

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEKEYFORTESTS1",
    "AWS_SECRET_ACCESS_KEY": "fake/secret/for/tests/only/0123456789abcd",
    "AWS_DEFAULT_REGION": "us-east-1",
}
OUTPUT_BUCKET = "results"
INPUT_BUCKET = "inputs"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    endpoints = [
        EndpointSpec("demo", f"s3://{OUTPUT_BUCKET}/out", f"s3://{OUTPUT_BUCKET}/fail"),
        EndpointSpec("no-failure-path", f"s3://{OUTPUT_BUCKET}/nf-out"),
    ]
    yield from serve_stack(endpoints, FAKE_CREDENTIALS, INPUT_BUCKET)


@pytest.fixture
def emulator(stack: LocalStack) -> Iterator[LocalStack]:
    """The shared stack, with its fault knobs back at their defaults after each test."""
    yield stack
    reset_faults(stack)


@pytest.fixture
def s3(stack: LocalStack) -> Any:
    return s3_client(stack)


def make_dataset(s3: Any, directory: Path, n: int, *, missing: int = 0) -> Dataset:
    return upload_dataset(s3, INPUT_BUCKET, directory, n, missing=missing)


def cli_env(stack: LocalStack) -> dict[str, str]:
    env = dict(os.environ)
    env.update(FAKE_CREDENTIALS)
    env["AWS_ENDPOINT_URL_S3"] = stack.s3_url
    env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = stack.sagemaker_url
    env["AWS_ENDPOINT_URL_SAGEMAKER"] = stack.sagemaker_url  # DescribeEndpoint
    env["AWS_ENDPOINT_URL_CLOUDWATCH"] = stack.s3_url  # moto: the endpoint metrics
    return env


def run_cli(
    stack: LocalStack, *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulkinvoke", *args],
        env=cli_env(stack),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
