"""A 1,000,000-row run (200,000 with --quick): reading and validating the manifest, planning the
run, ``bulkinvoke status`` on its ledger, peak memory, and the ledger's size on disk.

    python bench/run.py scale [--quick]

Each step runs in a fresh process, so its peak RSS is its own, imports included:

* the manifest (CSV) is read by ``bench_manifest.py --measure``;
* ``bulkinvoke submit --no-wait --timeout 0`` plans the run (plan.parquet, every call's
  inference ID) and stops before sending anything;
* every row then gets the events of a finished item (submitting, submitted, succeeded) through
  the Ledger API, as ``bench_ledger.py`` writes them, and the ledger is compacted: what a
  finished 1M-item run leaves;
* ``bulkinvoke status`` reads it (best of 3 wall times, start-up included).
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import bench_ledger
import bench_manifest
from benchlib import BULKINVOKE, ENDPOINT, PYTHON, Figure, client_env, run_measured

from bulkinvoke.ledger.store import Ledger

# ru_maxrss is in KiB; the target is in (decimal) gigabytes.
GB_PER_MIB = 2**20 / 1e9


def _finish_every_row(run_dir: Path, items: int) -> None:
    """Record a finished item's events for every row, in batches, then compact."""
    rng = random.Random(7)
    lag = 20_000
    with Ledger.open(run_dir) as ledger:
        for chunk in bench_ledger._steps(items, 10_000, lag):
            ledger.record_many(bench_ledger._events(chunk, rng, lag))
            ledger.flush()
        ledger.compact()


def run(quick: bool) -> list[Figure]:
    rows = 200_000 if quick else 1_000_000
    label = f"{rows:,} rows" + (" (quick)" if quick else "")
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        manifest = bench_manifest.generate("csv", rows, base)
        child = [PYTHON, bench_manifest.__file__, "--measure", str(manifest)]
        reading = run_measured(child)
        loaded = json.loads(reading.stdout)
        load_s = loaded["import_seconds"] + loaded["read_seconds"]
        print(f"  manifest: {json.dumps(loaded)}; VmHWM {reading.max_rss_mib:,.0f} MiB", flush=True)

        run_dir = base / "run"
        command = [BULKINVOKE, "submit", str(manifest), "--endpoint", ENDPOINT, "--no-wait"]
        command += ["--timeout", "0", "--quiet", "--run-dir", str(run_dir)]
        # Exit code 3: timed out before sending, which is what --timeout 0 asks for.
        planned = run_measured(command, env=client_env({}), ok=(3,))
        print(f"  planning: {planned.wall:.1f} s, peak RSS {planned.max_rss_mib:,.0f} MiB")

        _finish_every_row(run_dir, rows)
        size = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
        statuses = [run_measured([BULKINVOKE, "status", str(run_dir)]) for _ in range(3)]
        status_s = min(s.wall for s in statuses)
        status_rss = max(s.max_rss_mib for s in statuses)
        print(f"  status: best {status_s:.2f} s of 3, peak RSS {status_rss:,.0f} MiB")
    peaks = {
        # Not the child's own ru_maxrss figure: see benchlib.peak_rss_kib.
        "manifest load": reading.max_rss_mib,
        "planning (submit)": planned.max_rss_mib,
        "status": status_rss,
    }
    worst = max(peaks, key=peaks.__getitem__)
    return [
        Figure(
            f"manifest load + validate, {label}",
            load_s,
            "s",
            "< 10 s",
            load_s < 10,
            note=f"CSV; imports {loaded['import_seconds']:.2f} s, "
            f"read and validate {loaded['read_seconds']:.2f} s",
        ),
        Figure(
            f"status on a {rows:,}-item ledger",
            status_s,
            "s",
            "< 2 s",
            status_s < 2,
            note="bulkinvoke status, whole command, best of 3; compacted finished run",
        ),
        Figure(
            f"peak memory, {label}",
            peaks[worst] * GB_PER_MIB,
            "GB",
            "< 1.5 GB",
            peaks[worst] * GB_PER_MIB < 1.5,
            note=f"max RSS, in {worst}; "
            + ", ".join(f"{name} {mib:,.0f} MiB" for name, mib in peaks.items()),
        ),
        Figure(
            "ledger on disk per item",
            size / rows,
            "bytes",
            "< 100 bytes",
            size / rows < 100,
            note="whole run directory after compaction (plan, events, run.json)",
        ),
        Figure(
            f"(info) planning a {label} run",
            planned.wall,
            "s",
            note="submit --timeout 0: manifest, plan.parquet, every call's ID; nothing sent",
        ),
    ]
