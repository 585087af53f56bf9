"""Real servers on loopback for the reliability tests, and the fault tools from bench/.

The emulator and moto run in this process; `bulkinvoke` runs as a subprocess (or in-process
through typer's CliRunner where only speed matters), reaching them as a user's shell would. The
fault-injecting proxy, the crash harness and the ``sitecustomize`` hook that injects disk errors
and crashes live in bench/, which the long versions run from; the tests import them from there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from bulkinvoke.emulator import EndpointSpec, LocalStack
from tests.loopback import Dataset, reset_faults, s3_client, serve_stack, upload_dataset

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
FAULT_INJECT = BENCH / "fault_inject"
# The test modules import fault_proxy and crash_fuzz from here.
sys.path.insert(0, str(BENCH))

ENDPOINT = "rel"
INPUT_BUCKET = "rel-inputs"
OUTPUT_BUCKET = "rel-results"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIARELIABILITYTEST1",
    "AWS_SECRET_ACCESS_KEY": "fake/secret/for/reliability/tests/012345",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# Fuzzing: few examples in CI, many more with HYPOTHESIS_PROFILE=long (see bench/RELIABILITY.md).
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
settings.register_profile("long", parent=settings.get_profile("ci"))
EXAMPLES_SCALE = 20 if PROFILE == "long" else 1


def fuzz_settings(ci_examples: int) -> settings:
    """The profile's settings with ``ci_examples`` examples in CI (20 times more when long)."""
    return settings(settings.get_profile(PROFILE), max_examples=ci_examples * EXAMPLES_SCALE)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    endpoint = EndpointSpec(ENDPOINT, f"s3://{OUTPUT_BUCKET}/out", f"s3://{OUTPUT_BUCKET}/fail")
    yield from serve_stack([endpoint], FAKE_CREDENTIALS, INPUT_BUCKET)


@pytest.fixture
def emulator(stack: LocalStack) -> Iterator[LocalStack]:
    """The shared stack, with its fault knobs and endpoints back to normal after each test."""
    yield stack
    reset_faults(stack)
    if ENDPOINT not in {spec.name for spec in stack.endpoints()}:
        stack.add_endpoint(
            EndpointSpec(ENDPOINT, f"s3://{OUTPUT_BUCKET}/out", f"s3://{OUTPUT_BUCKET}/fail")
        )


@pytest.fixture
def s3(stack: LocalStack) -> Any:
    return s3_client(stack)


def make_dataset(s3: Any, directory: Path, n: int, *, missing: int = 0) -> Dataset:
    return upload_dataset(s3, INPUT_BUCKET, directory, n, missing=missing)


def cli_env(
    stack: LocalStack,
    *,
    sagemaker_url: str | None = None,
    s3_url: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BULKINVOKE_"))}
    env.update(FAKE_CREDENTIALS)
    env["AWS_ENDPOINT_URL_S3"] = s3_url or stack.s3_url
    env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = sagemaker_url or stack.sagemaker_url
    # DescribeEndpoint goes to the emulator itself, past any fault proxy of the runtime's.
    env["AWS_ENDPOINT_URL_SAGEMAKER"] = stack.sagemaker_url
    env["AWS_ENDPOINT_URL_CLOUDWATCH"] = stack.s3_url  # moto: the endpoint metrics
    env.update(extra or {})
    return env


def with_fault_hook(env: dict[str, str], **variables: str) -> dict[str, str]:
    """``env`` with bench/fault_inject's sitecustomize loaded and configured by ``variables``."""
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(FAULT_INJECT), env.get("PYTHONPATH")])),
        **variables,
    }


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulkinvoke", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bulkinvoke", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """The output of a process started by ``start_cli``; killed, not left behind, if it hangs."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


def assert_clean_error(stderr: str) -> None:
    """A failure the user can act on: one ``error:`` line, never a traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
