"""The endpoint's load while a run goes on, read from CloudWatch (moto's, which the emulator
publishes the SageMaker metrics to, reached by AWS_ENDPOINT_URL_CLOUDWATCH as any CloudWatch is):
the backlog in every progress snapshot, a scale from zero said rather than looking stuck, and
the dry run's estimate from the endpoint's measured ModelLatency."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkinvoke.emulator import EndpointSpec, LocalStack
from bulkinvoke.events import EndpointLoad, Notice, Progress, Subscribers

from .conftest import OUTPUT_BUCKET, cli_env, make_dataset

PUBLISH_SECONDS = 0.2


@pytest.fixture
def publishing(emulator: LocalStack) -> Iterator[LocalStack]:
    """The shared stack, publishing its metrics five times a second for the test."""
    emulator.configure(metrics_seconds=PUBLISH_SECONDS)
    yield emulator
    emulator.configure(metrics_seconds=60.0)


def _submit(env: dict[str, str], manifest: Path, endpoint: str, run_dir: Path, *more: str) -> Any:
    command = [sys.executable, "-m", "bulkinvoke", "submit", str(manifest), "--endpoint", endpoint]
    command += ["--run-dir", str(run_dir), "--endpoint-metrics-every", "0.5", *more]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_a_scale_from_zero_is_said_and_the_run_completes_once_the_instance_comes(
    publishing: LocalStack, s3: Any, tmp_path: Path
) -> None:
    publishing.add_endpoint(
        EndpointSpec("load-zero", f"s3://{OUTPUT_BUCKET}/zero", instances=0, scale_up_seconds=2.0)
    )
    try:
        data = make_dataset(s3, tmp_path, 6)
        done = _submit(cli_env(publishing), data.manifest, "load-zero", tmp_path / "run")
        assert done.returncode == 0, done.stderr
        assert "endpoint load-zero has 0 instances" in done.stderr
        # Not a run that looks stuck: the progress says why nothing comes back yet.
        progress = [line for line in done.stderr.splitlines() if "progress:" in line]
        assert progress and "endpoint scaling up from 0 instances" in progress[0]
        assert "Traceback" not in done.stderr
        summary = run_json(publishing, tmp_path / "run")
        assert summary["counts"]["succeeded"] == 6
    finally:
        publishing.remove_endpoint("load-zero")


def run_json(stack: LocalStack, run_dir: Path) -> dict[str, Any]:
    shown = subprocess.run(
        [sys.executable, "-m", "bulkinvoke", "status", str(run_dir), "--json"],
        env=cli_env(stack),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    summary: dict[str, Any] = json.loads(shown.stdout)
    return summary


class _Recorder:
    def __init__(self) -> None:
        self.loads: list[EndpointLoad] = []
        self.notices: list[Notice] = []

    def on_progress(self, progress: Progress) -> None:
        if progress.endpoint is not None:
            self.loads.append(progress.endpoint)

    def on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)


def test_every_progress_snapshot_carries_the_backlog_the_endpoint_published(
    publishing: LocalStack, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulkinvoke.run.outcome import Outcome
    from bulkinvoke.run.runner import RunOptions, submit

    publishing.add_endpoint(EndpointSpec("load-two", f"s3://{OUTPUT_BUCKET}/two", instances=2))
    publishing.configure(workers=2, latency="0.1")
    try:
        data = make_dataset(s3, tmp_path, 40)
        for name, value in cli_env(publishing).items():
            monkeypatch.setenv(name, value)
        recorder = _Recorder()
        options = RunOptions(endpoint="load-two", endpoint_metrics_seconds=0.3)
        result = submit(
            str(data.manifest),
            options,
            run_dir=tmp_path / "run",
            timeout=60,
            subscribers=Subscribers([recorder]),
        )
        assert result.outcome is Outcome.COMPLETE
        backlogs = [load for load in recorder.loads if load.backlog]
        assert backlogs, "no snapshot showed the queue the endpoint published"
        # Each figure is CloudWatch's average over its minute, per instance half the whole.
        assert all(
            load.backlog_per_instance == pytest.approx(load.backlog / 2) for load in backlogs
        )
        assert not any(load.scaling_up for load in recorder.loads)
        assert not [n for n in recorder.notices if "metrics" in n.message]
    finally:
        publishing.remove_endpoint("load-two")


def test_the_dry_run_estimates_from_the_measured_model_latency(
    publishing: LocalStack, s3: Any, tmp_path: Path
) -> None:
    publishing.add_endpoint(
        EndpointSpec(
            "load-timed", f"s3://{OUTPUT_BUCKET}/timed", instances=2, max_concurrent_per_instance=1
        )
    )
    publishing.configure(latency="0.2")
    try:
        env = cli_env(publishing)
        for folder in ("warm", "next"):
            (tmp_path / folder).mkdir()
        warm = make_dataset(s3, tmp_path / "warm", 4)
        assert _submit(env, warm.manifest, "load-timed", tmp_path / "warm-run").returncode == 0
        publishing.publish_metrics()
        data = make_dataset(s3, tmp_path / "next", 100)
        plan = _submit(env, data.manifest, "load-timed", tmp_path / "run", "--dry-run", "--json")
        assert plan.returncode == 0, plan.stderr
        figures = json.loads(plan.stdout)
        assert figures["seconds_per_item_measured"] is True
        assert 0.2 <= figures["seconds_per_item"] < 0.5
        # 100 items, 2 instances taking one at a time.
        assert figures["processing_seconds"] == pytest.approx(50 * figures["seconds_per_item"])
        given = _submit(
            env,
            data.manifest,
            "load-timed",
            tmp_path / "run",
            "--dry-run",
            "--json",
            "--seconds-per-item",
            "3",
        )
        assert json.loads(given.stdout)["processing_seconds"] == 150
    finally:
        publishing.remove_endpoint("load-timed")
