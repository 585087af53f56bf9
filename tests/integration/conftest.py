"""Real servers on loopback for end-to-end tests: the emulator and moto's S3, in this process,
reached by `bulkinvoke` subprocesses exactly as a user's shell would reach them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from bulkinvoke.emulator import EmulatorConfig, EndpointSpec, LocalStack, start_local_stack

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEKEYFORTESTS1",
    "AWS_SECRET_ACCESS_KEY": "fake/secret/for/tests/only/0123456789abcd",
    "AWS_DEFAULT_REGION": "us-east-1",
}
OUTPUT_BUCKET = "results"
INPUT_BUCKET = "inputs"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    saved = {k: os.environ.get(k) for k in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)
    endpoints = [
        EndpointSpec("demo", f"s3://{OUTPUT_BUCKET}/out", f"s3://{OUTPUT_BUCKET}/fail"),
        EndpointSpec("no-failure-path", f"s3://{OUTPUT_BUCKET}/nf-out"),
    ]
    with start_local_stack(endpoints, EmulatorConfig(workers=8)) as local:
        s3 = boto3.client("s3", endpoint_url=local.s3_url, region_name="us-east-1")
        s3.create_bucket(Bucket=INPUT_BUCKET)
        yield local
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def emulator(stack: LocalStack) -> Iterator[LocalStack]:
    """The shared stack, with its fault knobs back at their defaults after each test."""
    yield stack
    stack.configure(
        latency=EmulatorConfig().latency,
        capacity_per_second=None,
        unavailable_probability=0.0,
        internal_failure_probability=0.0,
        model_failure_probability=0.0,
    )


@pytest.fixture
def s3(stack: LocalStack) -> Any:
    return boto3.client("s3", endpoint_url=stack.s3_url, region_name="us-east-1")


@dataclass
class Dataset:
    manifest: Path
    locations: list[str]


def make_dataset(s3: Any, directory: Path, n: int, *, missing: int = 0) -> Dataset:
    """n inputs under a fresh prefix (the last ``missing`` of them never uploaded)."""
    prefix = f"data-{uuid.uuid4().hex[:8]}"
    locations = []
    for i in range(n):
        key = f"{prefix}/item-{i:06d}.json"
        if i < n - missing:
            s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=f'{{"i": {i}}}'.encode())
        locations.append(f"s3://{INPUT_BUCKET}/{key}")
    manifest = directory / f"{prefix}.csv"
    manifest.write_text("input_location\n" + "\n".join(locations) + "\n")
    return Dataset(manifest, locations)


def cli_env(stack: LocalStack) -> dict[str, str]:
    env = dict(os.environ)
    env.update(FAKE_CREDENTIALS)
    env["AWS_ENDPOINT_URL_S3"] = stack.s3_url
    env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = stack.sagemaker_url
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
