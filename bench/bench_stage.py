"""Staging records: ``submit RECORDS --stage`` against a bare boto3 upload pool.

    python bench/run.py stage [--quick]

Both put the same JSON Lines records (1 KiB each, all distinct) into moto's S3 (the server
``bulkinvoke emulator`` starts, in a process of its own: not written here), one object per
record named by its SHA-256, 16 at a time, each run a fresh process and a fresh prefix,
ABBA-ordered. bulkinvoke's run is ``submit --stage ... --timeout 0``: read, check, list the
stage, upload, plan, and send nothing (the time to send is the submit benchmarks'); the whole
process is timed, start-up included. Regime: server-bound (moto's PUT handling is the limit).
A second figure times the same submit again over the staged prefix: what a resumed or repeated
run pays to find that everything is there (one listing per 1,000 objects, no upload).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import boto3
from benchlib import (
    BULKINVOKE,
    ENDPOINT,
    PYTHON,
    Emulator,
    Figure,
    ratio_figure,
    run_measured,
)

HERE = Path(__file__).resolve().parent
CONCURRENCY = 16
BUCKET = "bench-stage"


def _records(path: Path, items: int, tag: str) -> Path:
    filler = "x" * 1000
    path.write_text(
        "".join(json.dumps({"n": i, "tag": tag, "pad": filler}) + "\n" for i in range(items))
    )
    return path


def _wall(client: str, records: Path, stage: str, run_dir: Path, emulator: Emulator) -> float:
    if client == "bulkinvoke":
        command = [BULKINVOKE, "submit", str(records), "--endpoint", ENDPOINT, "--stage", stage]
        command += ["--timeout", "0", "--quiet", "--concurrency", str(CONCURRENCY)]
        command += ["--run-dir", str(run_dir)]
    else:
        command = [PYTHON, str(HERE / "boto3_upload.py"), str(records), stage]
        command += ["--concurrency", str(CONCURRENCY)]
    # --timeout 0 ends the run before it sends: exit 3, incomplete.
    return run_measured(command, env=emulator.env(), ok=(0, 3)).wall


def run(quick: bool) -> list[Figure]:
    items = 1_000 if quick else 4_000
    pairs = 1 if quick else 2
    rates: dict[str, list[float]] = {"boto3 pool": [], "bulkinvoke": []}
    again: list[float] = []
    with Emulator() as emulator, tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        s3 = boto3.client(
            "s3", endpoint_url=emulator.s3_url, region_name="us-east-1", **_keys(emulator)
        )
        s3.create_bucket(Bucket=BUCKET)
        for i in range(pairs * 2):
            client = ("boto3 pool", "bulkinvoke", "bulkinvoke", "boto3 pool")[i % 4]
            records = _records(directory / f"r{i}.jsonl", items, f"t{i}")
            stage = f"s3://{BUCKET}/s{i}/"
            run_dir = directory / f"run{i}"
            wall = _wall(client, records, stage, run_dir, emulator)
            rates[client].append(items / wall)
            print(f"  {items:,} records  {client:11s} {items / wall:7,.0f}/s", flush=True)
            if client == "bulkinvoke":
                seconds = _wall(client, records, stage, directory / f"again{i}", emulator)
                again.append(seconds)
                print(f"  the same again, all staged: {seconds:.2f} s", flush=True)
    return [
        ratio_figure(
            f"server-bound: staging {items:,} records, whole process",
            statistics.fmean(rates["bulkinvoke"]),
            statistics.fmean(rates["boto3 pool"]),
            "records/s",
            at_least=0.9,
            note=f"submit --stage --timeout 0 vs a boto3 pool of {CONCURRENCY} threads "
            f"(bench/boto3_upload.py) into moto's S3; mean of {pairs} ABBA-ordered pairs",
        ),
        Figure(
            f"(info) staging {items:,} records again, all there",
            statistics.fmean(again),
            "s",
            note="the same submit with a fresh run dir: the stage listed, nothing uploaded",
        ),
    ]


def _keys(emulator: Emulator) -> dict[str, str]:
    env = emulator.env()
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }
