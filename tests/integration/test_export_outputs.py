"""`export --with-output` / `--expand-json` end to end: a real job on the emulator, then the
bodies compared with the S3 objects, in every format."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pyarrow as pa
import pytest

from bulkinvoke.emulator import LocalStack
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.export.outputs import OUTPUT_LIMIT
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.s3uri import parse_s3_uri
from bulkinvoke.states import State
from tests.test_export import read_export

from .conftest import INPUT_BUCKET, OUTPUT_BUCKET, Dataset, cli_env, make_dataset, run_cli

SECRET = "secret-attribute-7f3a"


@dataclass
class Job:
    data: Dataset
    run_dir: Path
    ledger: pd.DataFrame


def _client(stack: LocalStack) -> Any:
    return boto3.client("s3", endpoint_url=stack.s3_url, region_name="us-east-1")


@pytest.fixture(scope="module")
def job(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Job]:
    """Twelve inputs, the last three missing: nine outputs, three failures."""
    directory = tmp_path_factory.mktemp("export")
    data = make_dataset(_client(stack), directory, 12, missing=3)
    run_dir = directory / "run"
    done = run_cli(
        stack,
        "submit",
        str(data.manifest),
        "--endpoint",
        "demo",
        "--run-dir",
        str(run_dir),
        "--custom-attributes",
        SECRET,
        "--quiet",
    )
    assert done.returncode == 1, done.stderr
    yield Job(data, run_dir, read_ledger(run_dir))


def _body(stack: LocalStack, location: str) -> str:
    target = parse_s3_uri(location)
    return _client(stack).get_object(Bucket=target.bucket, Key=target.key)["Body"].read().decode()


def _export(stack: LocalStack, job: Job, target: Path, *args: str) -> pd.DataFrame:
    done = run_cli(stack, "export", str(job.run_dir), "-o", str(target), *args)
    assert done.returncode == 0, done.stderr
    assert f"to {target}" in done.stdout
    return read_export(target)


@pytest.mark.parametrize("name", ["out.parquet", "out.csv", "out.jsonl"])
def test_with_output_holds_each_output_object(
    stack: LocalStack, job: Job, tmp_path: Path, name: str
) -> None:
    got = _export(stack, job, tmp_path / name, "--with-output")
    assert got["row"].tolist() == list(range(1, 13))
    succeeded = got[got["state"] == "succeeded"]
    assert len(succeeded) == 9
    for location, output in zip(succeeded["output_location"], succeeded["output"], strict=True):
        assert output == _body(stack, location)
    assert (succeeded["output_encoding"] == "utf-8").all()
    assert not succeeded["output_truncated"].astype(bool).any()
    failed = got[got["state"] == "failed"]
    assert len(failed) == 3 and failed["output"].isna().all()
    assert got["output_error"].isna().all()


def test_expand_json_makes_a_column_of_each_key(
    stack: LocalStack, job: Job, tmp_path: Path
) -> None:
    got = _export(stack, job, tmp_path / "x.parquet", "--expand-json")
    # The emulator's default model writes a JSON summary of each input.
    for key in ("inference_id", "input_location", "size", "sha256", "text"):
        assert f"output.{key}" in got.columns
    succeeded = got[got["state"] == "succeeded"]
    assert (succeeded["output.input_location"] == succeeded["input_location"]).all()
    assert (succeeded["output.inference_id"] == succeeded["inference_id"]).all()
    assert succeeded["output.size"].tolist() == [len(f'{{"i": {i}}}') for i in range(9)]
    assert got[got["state"] == "failed"]["output.size"].isna().all()


def test_state_filter_with_outputs(stack: LocalStack, job: Job, tmp_path: Path) -> None:
    got = _export(stack, job, tmp_path / "failed.jsonl", "--state", "failed", "--with-output")
    assert got["row"].tolist() == [10, 11, 12]
    assert (got["state"] == "failed").all()
    assert got["output"].isna().all() and got["error"].notna().all()


def test_the_export_joins_back_to_the_manifest(stack: LocalStack, job: Job, tmp_path: Path) -> None:
    exported = _export(stack, job, tmp_path / "plain.csv")
    manifest = pd.read_csv(job.data.manifest)
    by_location = manifest.merge(exported, on="input_location", how="left", validate="1:1")
    assert by_location["state"].notna().all()
    assert by_location["input_location"].tolist() == job.data.locations
    by_row = manifest.assign(row=manifest.index + 1).merge(exported, on="row", validate="1:1")
    assert (by_row["input_location_x"] == by_row["input_location_y"]).all()
    # The plain export is read_ledger's table.
    assert exported["inference_id"].tolist() == job.ledger["inference_id"].tolist()
    assert SECRET not in (tmp_path / "plain.csv").read_text()


def test_binary_big_empty_and_missing_outputs(stack: LocalStack, tmp_path: Path) -> None:
    # A ledger made here, pointing at objects put in S3 here: what no model of the emulator
    # writes, read through real S3 ranges.
    s3 = _client(stack)
    bodies = [b"\x89PNG\r\n\x1a\n\x00\xff", b"a" * (OUTPUT_LIMIT + 5), b""]
    keys = [f"odd-{uuid.uuid4().hex[:8]}/{i}.out" for i in range(4)]
    for key, body in zip(keys, bodies, strict=False):
        s3.put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=body)
    plan = pa.table(
        {
            "row": pa.array([1, 2, 3, 4], pa.int64()),
            "line": [2, 3, 4, 5],
            "input_location": [f"s3://{INPUT_BUCKET}/{i}" for i in range(4)],
        }
    )
    run_dir = tmp_path / "run"
    with Ledger.create(run_dir, {"options": {"aws": {}}}, plan) as ledger:
        ledger.record_many(
            Event(row, 1, State.SUCCEEDED, 1.8e9, output_location=f"s3://{OUTPUT_BUCKET}/{key}")
            for row, key in enumerate(keys, start=1)
        )

    target = tmp_path / "odd.parquet"
    done = run_cli(stack, "export", str(run_dir), "-o", str(target), "--expand-json")
    assert done.returncode == 0, done.stderr
    assert "1 could not be read" in done.stdout
    got = pd.read_parquet(target)
    assert got["output_encoding"].tolist()[:3] == ["base64", "utf-8", "utf-8"]
    assert got["output"][0] == "iVBORw0KGgoA/w=="
    assert len(got["output"][1]) == OUTPUT_LIMIT
    assert got["output_truncated"].tolist() == [False, True, False, False]
    assert got["output"][2] == ""
    assert got["output"].isna()[3] and got["output_error"][3].startswith("NoSuchKey")
    assert [c for c in got.columns if c.startswith("output.")] == []


def test_s3_endpoint_url_on_the_command_line_wins(
    stack: LocalStack, job: Job, tmp_path: Path
) -> None:
    env = cli_env(stack)
    env["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9"  # nothing listens there
    target = tmp_path / "o.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bulkinvoke",
            "export",
            str(job.run_dir),
            "-o",
            str(target),
            "--with-output",
            "--s3-endpoint-url",
            stack.s3_url,
            "--region",
            "us-east-1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "9 outputs" in done.stdout and "0 could not be read" in done.stdout
