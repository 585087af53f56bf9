"""The README's first Quick start command: the example job on the embedded emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_example_job_runs_end_to_end_on_the_embedded_emulator(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bulkinvoke", "submit", str(ROOT / "manifests" / "example.csv"),
         "--endpoint", "demo", "--local", "--run-dir", str(tmp_path / "run"), "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["outcome"] == "complete"
    assert summary["counts"]["succeeded"] == summary["items"] > 0
