"""Scale-out end to end: three shard processes in parallel with an S3 ledger mirror, one killed
with kill -9 and resumed on a "new machine" (an empty run directory, filled from the mirror);
the shards' merged report and export must be the single-machine run's.

Compared report fields (those that depend only on the data): ``items``, ``counts``,
``failures`` (groups, reasons, counts, examples), ``attempts.total`` and
``attempts.retried_items``, ``output_bytes``. Not compared: ``run`` (directories, creation
time, shards), ``timings``, ``latency_s``, ``completions`` and ``latency_histogram`` (when
things happened; an item settled after a crash from the output already in S3 has no
``submitted_at``, so not even the count of latencies survives a kill), and ``attempts.retries``
/ ``attempts.throttles`` (how busy the endpoint was).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from bulkinvoke.emulator import LocalStack
from bulkinvoke.errors import LeaseHeld
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.reports.model import build_report
from bulkinvoke.scale.lease import Lease

from .conftest import cli_env, make_dataset, run_cli

SHARDS = 3
ITEMS = 90
MISSING = 6
LEASE_SECONDS = 1.0
LEDGER_BUCKET = "ledgers"


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "items": report["items"],
        "counts": report["counts"],
        "failures": report["failures"],
        "attempts": {k: report["attempts"][k] for k in ("total", "retried_items")},
        "output_bytes": report["output_bytes"],
    }


def _start_shard(stack: LocalStack, manifest: Path, cwd: Path, index: int, uri: str) -> Any:
    # Each child learns its shard as AWS Batch (array jobs) or Kubernetes (Indexed Jobs) tells it.
    index_variable = "JOB_COMPLETION_INDEX" if index % 2 else "AWS_BATCH_JOB_ARRAY_INDEX"
    env = {**cli_env(stack), index_variable: str(index)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulkinvoke",
            "submit",
            str(manifest),
            "--endpoint",
            "demo",
            "--id-namespace",
            "scale-out",
            "--shard",
            "auto",
            "--shards",
            str(SHARDS),
            "--rate",
            "60",
            "--concurrency",
            "4",
            "--ledger-uri",
            uri,
            "--ledger-lease-seconds",
            str(LEASE_SECONDS),
            "--quiet",
            "--json",
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_mirrored_events(s3: Any, prefix: str, process: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        listed = s3.list_objects_v2(Bucket=LEDGER_BUCKET, Prefix=prefix + "events/")
        if listed.get("KeyCount", 0):
            return
        time.sleep(0.02)


def _take_when_expired(lease: Lease, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            lease.acquire()
            return
        except LeaseHeld:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_shards_killed_and_moved_merge_into_the_single_machine_run(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    emulator.configure(latency="uniform:0.01-0.05")
    data = make_dataset(s3, tmp_path, ITEMS, missing=MISSING)
    s3.create_bucket(Bucket=LEDGER_BUCKET)
    root = f"job-{uuid.uuid4().hex[:8]}/"
    uri = f"s3://{LEDGER_BUCKET}/{root}"
    machine_a, machine_b = tmp_path / "machine-a", tmp_path / "machine-b"
    machine_a.mkdir()

    single = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulkinvoke",
            "submit",
            str(data.manifest),
            "--endpoint",
            "demo",
            "--id-namespace",
            "single-machine",
            "--run-dir",
            str(tmp_path / "single"),
            "--quiet",
        ],
        env=cli_env(emulator),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    shards = [_start_shard(emulator, data.manifest, machine_a, k, uri) for k in range(SHARDS)]
    _wait_for_mirrored_events(s3, root + "shard-1-of-3/", shards[1])
    assert shards[1].poll() is None, "shard 1 finished before it could be killed"
    os.kill(shards[1].pid, signal.SIGKILL)
    for index, process in enumerate(shards):
        _, stderr = process.communicate(timeout=60)
        assert process.returncode in ((-signal.SIGKILL,) if index == 1 else (0, 1)), stderr
    assert single.wait(timeout=60) == 1, single.communicate()[1]

    run_dirs = {
        k: machine_a / f"bulkinvoke-runs/{data.manifest.stem}-demo-shard-{k}-of-3"
        for k in range(SHARDS)
    }
    config = json.loads((run_dirs[0] / "run.json").read_text())
    assert config["shard"] == {"index": 0, "count": 3}
    assert config["options"]["rate"] == 20.0, "--shards 3 --rate 60: 20 calls/s each"
    assert config["mirror"]["uri"] == uri + "shard-0-of-3/"
    other = run_cli(
        emulator,
        "submit",
        str(data.manifest),
        "--endpoint",
        "demo",
        "--id-namespace",
        "scale-out",
        "--shard",
        "1/3",
        "--run-dir",
        str(run_dirs[0]),
    )
    assert other.returncode == 2 and "shard 0/3, not shard 1/3" in other.stderr, other.stderr

    # The dead shard's lease outlives it. Once it runs out another process may take it, and
    # while that one holds it, a new machine is refused and downloads nothing.
    dead = json.loads(
        s3.get_object(Bucket=LEDGER_BUCKET, Key=root + "shard-1-of-3/_lease.json")["Body"].read()
    )
    assert dead["pid"] == shards[1].pid
    holder = Lease(
        s3,
        LEDGER_BUCKET,
        root + "shard-1-of-3/_lease.json",
        seconds=30,
        run_dir=tmp_path / "elsewhere",
    )
    _take_when_expired(holder)
    moved = machine_b / "shard-1"
    try:
        refused = run_cli(emulator, "resume", str(moved), "--ledger-uri", uri + "shard-1-of-3/")
        assert refused.returncode == 2
        assert "held by another live bulkinvoke process" in refused.stderr
        assert not (moved / "run.json").exists(), "nothing is downloaded without the lease"
    finally:
        holder.release()
    resumed = run_cli(
        emulator, "resume", str(moved), "--ledger-uri", uri + "shard-1-of-3/", "--json", "--quiet"
    )
    assert resumed.returncode in (0, 1), resumed.stderr
    assert json.loads(resumed.stdout)["counts"]["pending"] == 0
    run_dirs[1] = moved

    # A Batch retry runs the same command on a fresh machine: it continues the shard from S3.
    machine_c = tmp_path / "machine-c"
    machine_c.mkdir()
    again = _start_shard(emulator, data.manifest, machine_c, 2, uri)
    stdout, stderr = again.communicate(timeout=60)
    assert again.returncode in (0, 1), stderr
    assert json.loads(stdout)["submitted_this_session"] == 0

    expected = comparable(build_report(tmp_path / "single"))
    done = run_cli(emulator, "report", uri, "--format", "json")
    assert done.returncode == 0, done.stderr
    merged = json.loads(done.stdout)
    assert comparable(merged) == expected
    assert merged["run"]["shards"] == {"count": 3, "included": [0, 1, 2], "missing": []}
    assert comparable(build_report([run_dirs[k] for k in (2, 0, 1)])) == expected

    exported = tmp_path / "merged.parquet"
    done = run_cli(emulator, "export", uri, "-o", str(exported))
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(exported)
    assert table["row"].tolist() == list(range(1, ITEMS + 1)), "every manifest row exactly once"
    assert table["input_location"].tolist() == data.locations
    reference = read_ledger(tmp_path / "single")
    assert table["state"].tolist() == reference["state"].tolist()
    assert read_ledger(list(run_dirs.values()))["row"].tolist() == list(range(1, ITEMS + 1))
