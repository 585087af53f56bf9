"""The deployment examples run commands this CLI accepts, with as many shards as the scheduler
starts children: a renamed flag or a changed count must fail here, not on a cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import typer.main
import yaml

from bulkinvoke.cli.app import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _parsed_submit(command: list[str]) -> dict[str, Any]:
    assert command[:2] == ["bulkinvoke", "submit"], command
    submit = typer.main.get_command(app).commands["submit"]  # type: ignore[attr-defined]
    context: click.Context = submit.make_context("submit", list(command[2:]))
    return context.params


def test_the_kubernetes_indexed_job_runs_one_shard_per_completion_index() -> None:
    job = yaml.safe_load((EXAMPLES / "kubernetes" / "indexed-job.yaml").read_text())
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    # podFailurePolicy is accepted only with restartPolicy Never.
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    (container,) = spec["template"]["spec"]["containers"]
    params = _parsed_submit(container["command"])
    assert params["shard"] == "auto"
    assert params["shards"] == spec["completions"]
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["onExitCodes"]["containerName"] == container["name"]
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & {
        e["name"] for e in container["env"]
    }


def test_the_aws_batch_array_job_runs_one_shard_per_child() -> None:
    definition = json.loads((EXAMPLES / "aws-batch" / "job-definition.json").read_text())
    submission = json.loads((EXAMPLES / "aws-batch" / "submit-array-job.json").read_text())
    parameters = submission["parameters"]
    command = [
        parameters.get(part.removeprefix("Ref::"), part) if part.startswith("Ref::") else part
        for part in definition["containerProperties"]["command"]
    ]
    params = _parsed_submit(command)
    assert params["shard"] == "auto"
    assert params["shards"] == submission["arrayProperties"]["size"]
