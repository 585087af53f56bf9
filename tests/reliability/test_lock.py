"""Two processes on one run directory: the second refuses at once, naming the holder; a holder
killed with -9 holds nothing (the lock is an flock, which the kernel drops with the process)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from bulkinvoke.emulator import LocalStack

from .conftest import ENDPOINT, assert_clean_error, cli_env, make_dataset, run_cli, start_cli


def test_a_second_process_is_refused_until_the_first_dies(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 20)
    run_dir = tmp_path / "run"
    env = cli_env(emulator)
    submit = ["submit", str(data.manifest), "--endpoint", ENDPOINT, "--run-dir", str(run_dir)]
    # An endpoint that takes a call every two seconds keeps the first process busy.
    emulator.configure(capacity_per_second=0.5)
    first = start_cli(env, *submit, "--quiet")
    try:
        deadline = time.monotonic() + 30
        while not (run_dir / "events").is_dir() or not os.listdir(run_dir / "events"):
            assert first.poll() is None and time.monotonic() < deadline, "the first never started"
            time.sleep(0.02)

        for command in (["resume", str(run_dir)], submit):
            started = time.monotonic()
            second = run_cli(env, *command, timeout=30)
            assert second.returncode == 2, second.stderr
            assert_clean_error(second.stderr)
            assert f"in use by another bulkinvoke process (PID {first.pid})" in second.stderr
            assert time.monotonic() - started < 10, "refused at once, not after waiting"
        assert first.poll() is None, "the first process was still at work throughout"

        # Reading needs no lock: status works while the run goes on.
        status = run_cli(env, "status", str(run_dir), "--json")
        assert status.returncode == 0, status.stderr
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()

    emulator.configure(capacity_per_second=None)
    done = run_cli(env, "resume", str(run_dir), "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["succeeded"] == 20
