"""A full disk or an I/O error while the ledger is written: the run stops with one clear line and
exit code 4, the ledger stays readable, nothing is sent without its intent on disk, and a resume
finishes the job.

The errors come from bench/fault_inject's sitecustomize, loaded into the real `bulkinvoke`
process: the N-th fsync (or write) that the ledger makes fails with ENOSPC or EIO.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bulkinvoke.cli.app import app
from bulkinvoke.emulator import LocalStack
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.manifest.ids import inference_id

from .conftest import ENDPOINT, assert_clean_error, cli_env, make_dataset, run_cli, with_fault_hook

ITEMS = 60


@pytest.mark.parametrize(
    ("op", "at", "once", "errno"),
    [
        # Creating the run: plan.parquet's fsync fails; nothing is sent.
        ("fsync", 1, "0", "ENOSPC"),
        # Mid-run, for good: every flush from the third batch on fails.
        ("fsync", 9, "0", "ENOSPC"),
        # Mid-run, once: an I/O error on one write, the disk fine afterwards.
        ("write", 6, "1", "EIO"),
    ],
    ids=["creating", "mid-run-disk-full", "mid-run-io-error-once"],
)
def test_ledger_write_error_stops_cleanly_and_resumes(
    emulator: LocalStack, s3: Any, tmp_path: Path, op: str, at: int, once: str, errno: str
) -> None:
    emulator.configure(latency="uniform:0.01-0.05")
    data = make_dataset(s3, tmp_path, ITEMS)
    run_dir = tmp_path / "run"
    env = cli_env(emulator)
    before = emulator.accepted_ids()
    faulty = with_fault_hook(
        env,
        BULKINVOKE_FAULT_OP=op,
        BULKINVOKE_FAULT_AT=str(at),
        BULKINVOKE_FAULT_ONCE=once,
        BULKINVOKE_FAULT_ERRNO=errno,
    )
    submit = ["submit", str(data.manifest), "--endpoint", ENDPOINT, "--run-dir", str(run_dir),
              "--rate", "100", "--concurrency", "4"]  # fmt: skip
    failed = run_cli(faulty, *submit)

    assert failed.returncode == 4, failed.stderr
    assert_clean_error(failed.stderr)
    reason = "No space left on device" if errno == "ENOSPC" else "Input/output error"
    assert reason in failed.stderr
    assert str(run_dir) in failed.stderr

    ids = {inference_id("", ENDPOINT, location, 1): row for row, location in enumerate(
        data.locations, 1)}  # fmt: skip
    sent = {i: n - before.get(i, 0) for i, n in emulator.accepted_ids().items() if i in ids}
    if at == 1:
        assert not (run_dir / "run.json").exists()
        assert not any(sent.values())
    else:
        status = CliRunner().invoke(app, ["status", str(run_dir), "--json"], env=env)
        assert status.exit_code == 0, status.output
        assert json.loads(status.stdout)["items"] == ITEMS
        # Every call that reached the endpoint had its intent on disk first.
        table = read_ledger(run_dir)
        state_of = dict(zip(table["row"], table["state"], strict=True))
        assert not [ids[i] for i, n in sent.items() if n and state_of[ids[i]] == "pending"]

    # The same command, on a disk that works again, finishes the job.
    again = run_cli(env, *submit, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["counts"]["succeeded"] == ITEMS
    table = read_ledger(run_dir)
    assert (table["state"] == "succeeded").all() and len(table) == ITEMS
    sent = {i: n - before.get(i, 0) for i, n in emulator.accepted_ids().items() if i in ids}
    assert set(sent) == set(ids), "every input reached the endpoint"
