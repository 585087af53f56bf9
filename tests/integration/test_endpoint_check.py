"""``submit`` describes the endpoint before its first call (DescribeEndpoint through the
emulator's control plane, reached as any SageMaker API is, by AWS_ENDPOINT_URL_SAGEMAKER):
an endpoint that cannot take the calls is refused with exit 4 and one line, nothing sent and
nothing lost; one that cannot be described leaves the run unchecked, with a warning."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bulkinvoke.emulator import EndpointSpec, LocalStack

from .conftest import OUTPUT_BUCKET, cli_env, make_dataset, run_cli


def _submit(
    env: dict[str, str], manifest: Path, endpoint: str, run_dir: Path, *more: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bulkinvoke", "submit", str(manifest), "--endpoint", endpoint]
    command += ["--run-dir", str(run_dir), "--quiet", "--json", *more]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (
            EndpointSpec("check-creating", f"s3://{OUTPUT_BUCKET}/creating", status="Creating"),
            "endpoint check-creating is Creating, not InService",
        ),
        (
            EndpointSpec("check-realtime", f"s3://{OUTPUT_BUCKET}/rt", asynchronous=False),
            "endpoint check-realtime has no AsyncInferenceConfig",
        ),
    ],
)
def test_an_endpoint_that_cannot_take_the_calls_is_refused_before_anything_is_written(
    emulator: LocalStack, s3: Any, tmp_path: Path, spec: EndpointSpec, reason: str
) -> None:
    emulator.add_endpoint(spec)
    data = make_dataset(s3, tmp_path, 5)
    before = sum(emulator.accepted_ids().values())
    env = cli_env(emulator)
    refused = _submit(env, data.manifest, spec.name, tmp_path / "run")
    assert refused.returncode == 4, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert reason in line and "nothing was sent" in line and "Traceback" not in line
    assert sum(emulator.accepted_ids().values()) == before
    assert not (tmp_path / "run").exists()
    # Once the endpoint is right, the same command runs.
    emulator.add_endpoint(replace(spec, status="InService", asynchronous=True))
    done = _submit(env, data.manifest, spec.name, tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["succeeded"] == 5


def test_a_run_whose_endpoint_went_out_of_service_is_refused_then_resumed(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    spec = EndpointSpec("check-later", f"s3://{OUTPUT_BUCKET}/later")
    emulator.add_endpoint(spec)
    data = make_dataset(s3, tmp_path, 4)
    env = cli_env(emulator)
    planned = _submit(env, data.manifest, spec.name, tmp_path / "run", "--no-wait")
    assert planned.returncode == 0, planned.stderr
    emulator.add_endpoint(replace(spec, status="OutOfService"))
    refused = run_cli(emulator, "resume", str(tmp_path / "run"), "--quiet", "--json")
    assert refused.returncode == 4, refused.stderr
    assert "endpoint check-later is OutOfService" in refused.stderr
    emulator.add_endpoint(spec)
    resumed = run_cli(emulator, "resume", str(tmp_path / "run"), "--quiet", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["counts"]["succeeded"] == 4


def test_an_endpoint_that_does_not_exist_is_refused(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 2)
    refused = _submit(cli_env(emulator), data.manifest, "check-nowhere", tmp_path / "run")
    assert refused.returncode == 4, refused.stderr
    assert "endpoint check-nowhere does not exist" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_an_api_out_of_reach_leaves_the_run_unchecked_with_a_warning(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 3)
    env = {**cli_env(emulator), "AWS_ENDPOINT_URL_SAGEMAKER": "http://127.0.0.1:9"}
    done = _submit(env, data.manifest, "demo", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert "endpoint demo was not checked before sending" in done.stderr
    assert json.loads(done.stdout)["counts"]["succeeded"] == 3
    # Asked not to check, it does not warn.
    quiet = _submit(env, data.manifest, "demo", tmp_path / "run2", "--no-check-endpoint")
    assert quiet.returncode == 0 and "not checked" not in quiet.stderr


def test_the_dry_run_reports_the_endpoint_and_estimates_time_and_cost(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    emulator.add_endpoint(
        EndpointSpec(
            "check-sized",
            f"s3://{OUTPUT_BUCKET}/sized",
            instances=2,
            instance_type="ml.g5.xlarge",
            max_concurrent_per_instance=4,
        )
    )
    data = make_dataset(s3, tmp_path, 40)
    planned = _submit(
        cli_env(emulator),
        data.manifest,
        "check-sized",
        tmp_path / "run",
        "--dry-run",
        "--seconds-per-item", "3",
        "--price-per-instance-hour", "1.5",
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    endpoint = plan["endpoint"]
    assert endpoint["status"] == "InService" and endpoint["instances"] == 2
    assert endpoint["instance_type"] == "ml.g5.xlarge"
    assert endpoint["output_path"] == f"s3://{OUTPUT_BUCKET}/sized"
    # 40 items x 3 s over 2 instances x 4 invocations at once; 2 instances for that long.
    assert plan["processing_seconds"] == pytest.approx(15.0)
    assert plan["processing_seconds_at_most"] is False
    assert plan["estimated_cost"] == pytest.approx(2 * 15.0 / 3600 * 1.5)
    assert not (tmp_path / "run").exists()
    # The text form says the same for a person.
    text = run_cli(
        emulator, "submit", str(data.manifest), "--endpoint", "check-sized", "--dry-run",
        "--seconds-per-item", "3",
    )  # fmt: skip
    assert "endpoint check-sized: InService, 2 x ml.g5.xlarge, 4 concurrent" in text.stdout, (
        text.stdout
    )
