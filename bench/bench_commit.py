"""What group commit costs: ``submit --no-wait`` with this checkout against the same command at the
last revision before group commit (each call slot then went on without waiting for its answer to
be on disk), in the same run, against a fresh emulator each time.

    python bench/run.py commit [--quick]

Two regimes: client-bound (an emulator on loopback: the client's CPU is the limit, where a wait
per call shows most) and latency-bound (the emulator answers each call after a 40 ms round trip,
jittered, as a real endpoint across a network does: the wait adds to each call's round trip).
The baseline revision is checked out into a temporary git worktree and run with the same Python
and packages. Runs alternate ABBA; the figure is the ratio of the mean steady rates.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
from pathlib import Path

from benchlib import (
    BULKINVOKE,
    ENDPOINT,
    PYTHON,
    REPO,
    Emulator,
    Figure,
    client_env,
    ratio_figure,
    run_measured,
    steady_window,
    submitted_times,
    write_manifest,
)

# The last commit whose call slots did not wait for the journal.
BASELINE_REVISION = "46e7ee4ace0e3b1c43654b7cef0a375a9bab14c8"
CONCURRENCY = 16
REGIMES = {"client-bound": "0", "latency-bound": "uniform:0.03-0.05"}


def _steady_rate(
    command: list[str], env: dict[str, str], manifest: Path, run_dir: Path, latency: str
) -> float:
    with Emulator(workers=16) as emulator:
        emulator.configure(network_latency=latency)
        emulator.warm_up()
        run = [*command, "submit", str(manifest), "--endpoint", ENDPOINT, "--no-wait"]
        run += ["--concurrency", str(CONCURRENCY), "--quiet", "--run-dir", str(run_dir)]
        run_measured(run, env={**emulator.env(), **env})
    start, end, calls = steady_window(submitted_times(run_dir))
    return calls / (end - start)


def run(quick: bool) -> list[Figure]:
    items = 4_000 if quick else 12_000
    pairs = 1 if quick else 2
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        baseline_tree = base / "baseline"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(baseline_tree),
             BASELINE_REVISION],
            check=True,
        )  # fmt: skip
        try:
            clients = {
                "group commit": ([BULKINVOKE], {}),
                "before": ([PYTHON, "-m", "bulkinvoke"], {"PYTHONPATH": str(baseline_tree)}),
            }
            manifest = write_manifest(base / "manifest.csv", items, "commit")
            for regime, latency in REGIMES.items():
                rates: dict[str, list[float]] = {name: [] for name in clients}
                for i in range(pairs):
                    order = list(clients) if i % 2 == 0 else list(reversed(clients))
                    for name in order:
                        command, env = clients[name]
                        run_dir = base / f"{regime}-{name}-{i}".replace(" ", "-")
                        rate = _steady_rate(command, env, manifest, run_dir, latency)
                        rates[name].append(rate)
                        print(f"  {regime:14s} {name:13s} {rate:7,.0f} calls/s", flush=True)
                figures.append(
                    ratio_figure(
                        f"group commit, {regime}: steady rate",
                        statistics.fmean(rates["group commit"]),
                        statistics.fmean(rates["before"]),
                        "calls/s",
                        at_least=0.95,
                        note=f"baseline: {BASELINE_REVISION[:8]} (no wait for the disk); "
                        f"{items:,} items, concurrency {CONCURRENCY}, network latency "
                        f"{latency} s, mean of {pairs} ABBA-ordered runs",
                    )
                )
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(baseline_tree)],
                check=False,
                env=client_env({}),
            )
    return figures
