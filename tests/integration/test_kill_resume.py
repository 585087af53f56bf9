"""kill -9 a real `bulkinvoke submit` at several instants, resume, and check that nothing was lost.

Invariants after the final resume: every manifest row has succeeded exactly once in the ledger,
every input reached the endpoint, and the calls sent more than once are at most what can be in
flight at a kill: ``--concurrency`` (a call slot takes its next call only once the answer to its
last one is durable). With ``--in-doubt wait``, against an endpoint that works, none at all.
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


def _start_submit(
    stack: LocalStack, manifest: Path, run_dir: Path, *more: str
) -> subprocess.Popen[str]:
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
            *more,
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


def _kill_resume(
    emulator: LocalStack,
    s3: Any,
    tmp_path: Path,
    *,
    delays: tuple[float, ...],
    in_doubt: str,
    items: int = 300,
) -> tuple[int, int]:
    """Start, kill -9 after each of ``delays``, resume; check nothing is lost and return
    (kills, calls the endpoint accepted more than once)."""
    data = make_dataset(s3, tmp_path, items)
    run_dir = tmp_path / "run"
    expected_ids = {inference_id("", "demo", location, 1) for location in data.locations}
    before = _accepted(emulator)
    kills = 0
    for delay in delays:
        process = _start_submit(emulator, data.manifest, run_dir, "--in-doubt", in_doubt)
        _wait_for_batches(run_dir, process)
        _kill_after(process, delay)
        kills += process.returncode == -signal.SIGKILL
    assert kills >= 2, "the submits finished before they could be killed"

    done = run_cli(emulator, "resume", str(run_dir), "--in-doubt", in_doubt, "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"]["succeeded"] == items

    table = read_ledger(run_dir)
    assert len(table) == items
    assert (table["state"] == "succeeded").all()
    assert set(table["inference_id"]) == expected_ids

    sent = _accepted(emulator) - before
    assert set(sent) == expected_ids, "every input reached the endpoint"
    duplicates = sum(sent.values()) - len(sent)
    print(f"{kills} kills, {duplicates} duplicate calls, summary {summary}")
    return kills, duplicates


def test_kill_9_at_several_instants_then_resume(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    emulator.configure(latency="uniform:0.01-0.05")
    kills, duplicates = _kill_resume(
        emulator, s3, tmp_path, delays=(0.05, 0.4, 0.9), in_doubt="resend"
    )
    assert duplicates <= kills * CONCURRENCY


def test_a_kill_repeats_at_most_the_calls_in_flight_when_outputs_come_late(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    # Outputs land 1.5-3 s after acceptance, as from a real queue (with workers enough to keep
    # up): at resume, no call accepted just before a kill has its output yet, so every one in
    # doubt is sent again.
    emulator.configure(latency="uniform:1.5-3", workers=48)
    kills, duplicates = _kill_resume(
        emulator, s3, tmp_path, delays=(0.3, 0.5, 0.7), in_doubt="resend", items=150
    )
    assert duplicates <= kills * CONCURRENCY, f"{duplicates} duplicates after {kills} kills"


def test_in_doubt_wait_repeats_no_call_when_outputs_come_late(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    emulator.configure(latency="uniform:1.5-3", workers=48)
    _, duplicates = _kill_resume(
        emulator, s3, tmp_path, delays=(0.3, 0.5, 0.7), in_doubt="wait", items=150
    )
    assert duplicates == 0


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
