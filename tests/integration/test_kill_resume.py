"""kill -9 a real `bulkinvoke submit` at several instants, resume, and check that nothing was lost.

Invariants after the final resume: every manifest row has succeeded exactly once in the ledger,
every input reached the endpoint, and the calls sent more than once are bounded by what can be in
flight at a kill (the concurrency, plus results accepted but not yet flushed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bulkinvoke.emulator import LocalStack
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.manifest.ids import inference_id

from .conftest import cli_env, make_dataset, run_cli

RATE = 150
CONCURRENCY = 8
FLUSH_INTERVAL = 0.1


def _start_submit(stack: LocalStack, manifest: Path, run_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulkinvoke",
            "submit",
            str(manifest),
            "--endpoint",
            "demo",
            "--run-dir",
            str(run_dir),
            "--rate",
            str(RATE),
            "--concurrency",
            str(CONCURRENCY),
            "--quiet",
        ],
        env=cli_env(stack),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_batches(run_dir: Path, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        events = run_dir / "events"
        if events.is_dir() and any(p.suffix == ".parquet" for p in events.iterdir()):
            return
        time.sleep(0.01)


def _kill_after(process: subprocess.Popen[str], delay: float) -> None:
    time.sleep(delay)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def _accepted(stack: LocalStack) -> Counter[str]:
    return Counter(stack.accepted_ids())


def test_kill_9_at_several_instants_then_resume(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    emulator.configure(latency="uniform:0.01-0.05")
    data = make_dataset(s3, tmp_path, 300)
    run_dir = tmp_path / "run"
    expected_ids = {inference_id("", "demo", location, 1) for location in data.locations}
    before = _accepted(emulator)

    kills = 0
    for delay in (0.05, 0.4, 0.9):
        process = _start_submit(emulator, data.manifest, run_dir)
        _wait_for_batches(run_dir, process)
        _kill_after(process, delay)
        kills += process.returncode == -signal.SIGKILL

    done = run_cli(emulator, "resume", str(run_dir), "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["succeeded"] == 300

    table = read_ledger(run_dir)
    assert len(table) == 300
    assert (table["state"] == "succeeded").all()
    assert set(table["inference_id"]) == expected_ids

    sent = _accepted(emulator) - before
    assert set(sent) == expected_ids, "every input reached the endpoint"
    duplicates = sum(sent.values()) - len(sent)
    bound = kills * (CONCURRENCY + int(RATE * FLUSH_INTERVAL * 2))
    assert kills >= 2, "the submits finished before they could be killed"
    assert duplicates <= bound, f"{duplicates} calls sent twice after {kills} kills"
    print(f"{kills} kills, {duplicates} duplicate calls (bound {bound})")


def test_kill_9_while_waiting_for_results_resends_nothing(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    emulator.configure(latency="fixed:0.4", workers=2)
    data = make_dataset(s3, tmp_path, 30)
    run_dir = tmp_path / "run"
    before = _accepted(emulator)
    process = _start_submit(emulator, data.manifest, run_dir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = run_cli(emulator, "status", str(run_dir), "--json")
        if status.returncode == 0:
            counts = json.loads(status.stdout)["counts"]
            if counts["submitted"] + counts["succeeded"] == 30 and counts["submitted"] > 0:
                break
        time.sleep(0.05)
    _kill_after(process, 0)
    emulator.configure(workers=8)

    done = run_cli(emulator, "resume", str(run_dir), "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["submitted_this_session"] == 0
    sent = _accepted(emulator) - before
    assert len(sent) == 30 and set(sent.values()) == {1}


def test_ctrl_c_stops_resumably_with_exit_130_and_says_how_to_go_on(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 40)
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulkinvoke",
            "submit",
            str(data.manifest),
            "--endpoint",
            "demo",
            "--run-dir",
            str(run_dir),
            "--rate",
            "10",
        ],
        env=cli_env(emulator),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_batches(run_dir, process)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert f"bulkinvoke resume {run_dir}" in stderr and "Traceback" not in stderr

    interrupted = read_ledger(run_dir)
    assert (interrupted["state"] != "succeeded").any(), "interrupted before the end"
    done = run_cli(emulator, "resume", str(run_dir), "--json")
    assert done.returncode == 0, done.stderr
    assert (read_ledger(run_dir)["state"] == "succeeded").all()
    accepted = emulator.accepted_ids()
    ids = [inference_id("", "demo", location, 1) for location in data.locations]
    assert all(accepted.get(i) == 1 for i in ids), "every input sent once, none twice"
