"""What looking at the endpoint costs a short run: ``submit --no-wait`` of 1,000 items (300 with
--quick), the whole process timed, without the endpoint check (``--no-check-endpoint``), with
the check alone (DescribeEndpoint and DescribeEndpointConfig, ``--endpoint-metrics-every 0``)
and with the check and the metrics watch (the default: one GetMetricData call on a thread of its
own at the start, then one a minute).

    python bench/run.py watch [--quick]

Client-bound on loopback: one emulator process (DescribeEndpoint at its address, CloudWatch in
its moto) serves every run; the variants take turns, so a drift in the machine's load falls on
each. The baseline is the run without the check.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchlib import (
    BULKINVOKE,
    ENDPOINT,
    Emulator,
    Figure,
    ratio_figure,
    run_measured,
    write_manifest,
)

VARIANTS = {
    "no check": ["--no-check-endpoint"],
    "check only": ["--endpoint-metrics-every", "0"],
    "check and metrics watch": [],
}


def run(quick: bool) -> list[Figure]:
    items, rounds = (300, 3) if quick else (1_000, 5)
    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as directory, Emulator(workers=16) as emulator:
        base = Path(directory)
        emulator.warm_up()
        manifest = write_manifest(base / "manifest.csv", items, "watch")
        names = list(VARIANTS)
        for round_ in range(rounds):
            # Each round in another order: every variant runs first, middle and last.
            order = names[round_ % 3 :] + names[: round_ % 3]
            for name in order:
                run_dir = base / f"run-{round_}-{names.index(name)}"
                command = [BULKINVOKE, "submit", str(manifest), "--endpoint", ENDPOINT]
                command += ["--no-wait", "--quiet", "--run-dir", str(run_dir), *VARIANTS[name]]
                measured = run_measured(command, env=emulator.env())
                wall[name].append(measured.wall)
                cpu[name].append(measured.cpu)
    base_wall = statistics.median(wall["no check"])
    base_cpu = statistics.median(cpu["no check"])
    note = f"{items:,} items, --no-wait, whole process, median of {rounds}; baseline: no check"
    return [
        ratio_figure(
            f"submit, {name}, wall", statistics.median(wall[name]), base_wall, "s", note=note
        )
        for name in ("check only", "check and metrics watch")
    ] + [
        ratio_figure(f"submit, {name}, CPU", statistics.median(cpu[name]), base_cpu, "s", note=note)
        for name in ("check only", "check and metrics watch")
    ]
