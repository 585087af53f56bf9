"""The README's first Quick start command: the example job on the embedded emulator."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bulkinvoke.emulator import LocalStack

from .conftest import make_dataset, run_cli

ROOT = Path(__file__).resolve().parents[2]


# A proxy set for the user's real traffic (nothing listens on port 9) must not take the calls
# to the embedded emulator on loopback.
UNREACHABLE_PROXY = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


@pytest.mark.parametrize("proxy", [{}, UNREACHABLE_PROXY], ids=["no proxy", "proxy set"])
def test_example_job_runs_end_to_end_on_the_embedded_emulator(
    tmp_path: Path, proxy: dict[str, str]
) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bulkinvoke",
            "submit",
            str(ROOT / "manifests" / "example.csv"),
            "--endpoint",
            "demo",
            "--local",
            "--run-dir",
            str(tmp_path / "run"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**env, **proxy},
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["outcome"] == "complete"
    assert summary["counts"]["succeeded"] == summary["items"] > 0
    if proxy:
        return
    # The outputs ended with the embedded emulator: said once, not as an error per row.
    exported = subprocess.run(
        [sys.executable, "-m", "bulkinvoke", "export", str(tmp_path / "run"), "-o",
         str(tmp_path / "out.parquet"), "--with-output"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert exported.returncode == 2, exported.stderr
    assert "is a --local run" in exported.stderr and "Traceback" not in exported.stderr


def test_example_job_runs_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal the live display draws and redraws: the path a user sees, which pipes
    (and so every other test) never take."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulkinvoke",
            "submit",
            str(ROOT / "manifests" / "example.csv"),
            "--endpoint",
            "demo",
            "--local",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    output = bytearray()
    with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
        while chunk := os.read(leader, 65536):
            output += chunk
    os.close(leader)
    text = output.decode(errors="replace")
    assert process.wait(timeout=120) == 0, text
    assert "Traceback" not in text
    assert "succeeded" in text


def test_a_local_run_cut_short_is_finished_by_the_same_command(tmp_path: Path) -> None:
    """The embedded emulator, with the calls it had accepted, ends with the process: running the
    same command again sends what it never answered again, rather than waiting for it for hours."""
    manifest = ROOT / "manifests" / "example.csv"
    command = [sys.executable, "-m", "bulkinvoke", "submit", str(manifest), "--endpoint", "demo",
               "--local", "--run-dir", str(tmp_path / "run"), "--json"]  # fmt: skip
    first = subprocess.run([*command, "--no-wait"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    items = json.loads(first.stdout)["items"]
    assert json.loads(first.stdout)["counts"]["submitted"] == items, "nothing answered yet"
    assert json.loads(first.stdout)["next_step"].startswith("run the same command without")
    again = subprocess.run([*command, "--timeout", "60"], capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["counts"]["succeeded"] == items
    assert summary["submitted_this_session"] == items
    # resume (or retry, collect) would look for the ended emulator: it says what to do instead.
    resumed = subprocess.run([sys.executable, "-m", "bulkinvoke", "resume", str(tmp_path / "run")],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 2, resumed.stderr
    assert "was made with --local" in resumed.stderr and "Traceback" not in resumed.stderr


def test_local_never_continues_a_run_on_a_real_endpoint(
    emulator: LocalStack, s3: Any, tmp_path: Path
) -> None:
    data = make_dataset(s3, tmp_path, 3)
    inputs = data.manifest.with_name(f"{data.manifest.stem}-inputs")
    inputs.mkdir()
    for location in data.locations:
        (inputs / location.rsplit("/", 1)[1]).write_text("{}")
    run_dir = tmp_path / "run"
    real = run_cli(emulator, "submit", str(data.manifest), "--endpoint", "demo", "--run-dir",
                   str(run_dir), "--no-wait", "--quiet")  # fmt: skip
    assert real.returncode == 0, real.stderr
    before = (run_dir / "run.json").read_text()
    local = run_cli(emulator, "submit", str(data.manifest), "--endpoint", "demo", "--local",
                    "--run-dir", str(run_dir), "--quiet")  # fmt: skip
    assert local.returncode == 2, local.stderr
    assert "sends to a real endpoint: --local cannot continue it" in local.stderr
    assert (run_dir / "run.json").read_text() == before, "the real run's settings are kept"
    assert json.loads(before)["local"] is False


def test_piped_output_keeps_long_lines_whole(tmp_path: Path) -> None:
    """A pipe is 80 columns to rich: the run directory and the figures must not be broken."""
    run_dir = tmp_path / ("a-run-directory-with-a-name-long-enough-to-pass-eighty-columns" * 2)
    done = subprocess.run(
        [sys.executable, "-m", "bulkinvoke", "submit", str(ROOT / "manifests" / "example.csv"),
         "--endpoint", "demo", "--local", "--run-dir", str(run_dir), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"ledger: {run_dir}" in done.stdout.splitlines()


def test_a_local_run_with_no_inputs_to_upload_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "bulkinvoke", "submit", str(ROOT / "manifests" / "example.csv"),
         "--endpoint", "demo", "--local", "--local-inputs", str(tmp_path / "empty"),
         "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"none of the manifest's 6 inputs in {tmp_path / 'empty'}/" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()
