"""Benchmark of the ledger at the scale of a large run; prints figures, asserts nothing.

    .venv/bin/python bench/bench_ledger.py [--items 1000000] [--dir DIR] [--keep]

The write phase plays a run the way the runner drives the ledger: per flush, ``--batch`` rows are
submitted (submitting + submitted) and as many complete (succeeded) ``--lag`` rows behind, with
``maybe_compact`` after each flush except for the last ``--tail`` flushes, which are left for the
measured compaction. The measure phase runs in a fresh process, so that its peak RSS is that of
compaction and ``counts()`` alone.
"""

from __future__ import annotations

import argparse
import base64
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bulkinvoke.export.frame import read_ledger
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.states import State

T0 = 1_767_225_600.0  # 2026-01-01, the simulated start of the run
RATE = 2000.0  # submissions per simulated second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100, help="rows submitted per flush")
    parser.add_argument("--lag", type=int, default=20_000, help="rows between submit and finish")
    parser.add_argument("--tail", type=int, default=64, help="final flushes left uncompacted")
    parser.add_argument("--dir", type=Path, help="run directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-ledger-")) / "run"
    try:
        write(base, args.items, args.batch, args.lag, args.tail)
        subprocess.run([sys.executable, __file__, "--measure", str(base)], check=True)
    finally:
        if not args.keep:
            shutil.rmtree(base.parent if args.dir is None else base, ignore_errors=True)


def write(run_dir: Path, items: int, batch: int, lag: int, tail: int) -> None:
    import pyarrow as pa

    started = time.perf_counter()
    rows = pa.array(range(1, items + 1), pa.int64())
    plan = pa.table(
        {
            "row": rows,
            "line": pa.array(range(2, items + 2), pa.int64()),
            "input_location": [f"s3://bucket/data/{i:09d}.json" for i in range(items)],
        }
    )
    ledger = Ledger.create(run_dir, {"bench": True}, plan)
    print(f"items {items:,}; plan created in {time.perf_counter() - started:.2f} s")
    flushes: list[float] = []
    compactions: list[float] = []
    events = 0
    rng = random.Random(7)
    last_flush = -(-(items + lag) // batch) - 1
    with ledger:
        for step, chunk in enumerate(_steps(items, batch, lag)):
            built = list(_events(chunk, rng, lag))
            ledger.record_many(built)
            events += len(built)
            tick = time.perf_counter()
            ledger.flush()
            flushes.append(time.perf_counter() - tick)
            if step < last_flush - tail:
                tick = time.perf_counter()
                if ledger.maybe_compact():
                    compactions.append(time.perf_counter() - tick)
    elapsed = time.perf_counter() - started
    flushes.sort()
    print(
        f"write: {events:,} events in {len(flushes):,} flushes, {elapsed:.1f} s "
        f"({events / elapsed:,.0f} events/s including event construction)"
    )
    print(
        f"flush of ~{events // len(flushes)} events: median {_ms(statistics.median(flushes))}, "
        f"p99 {_ms(flushes[int(len(flushes) * 0.99)])}, max {_ms(flushes[-1])}"
    )
    if compactions:
        print(
            f"maybe_compact compacted {len(compactions)} times: total {sum(compactions):.1f} s, "
            f"max {max(compactions):.2f} s"
        )


def _steps(items: int, batch: int, lag: int) -> Iterator[tuple[range, range]]:
    """Per flush: the rows submitted and the rows completed."""
    for start in range(1, items + lag + 1, batch):
        submitted = range(start, min(start + batch, items + 1))
        done = range(max(1, start - lag), max(1, min(start - lag + batch, items + 1)))
        yield submitted, done


def _events(chunk: tuple[range, range], rng: random.Random, lag: int) -> Iterator[Event]:
    submitted, done = chunk
    for row in submitted:
        at = T0 + row / RATE
        inference_id = "bi-" + base64.b32encode(rng.randbytes(15)).decode().lower()
        yield Event(row, 1, State.SUBMITTING, at)
        yield Event(
            row,
            1,
            State.SUBMITTED,
            at + rng.uniform(0.02, 0.2),
            inference_id=inference_id,
            submitted_at=at,
            output_location=f"s3://bucket/out/{inference_id}.out",
            failure_location=f"s3://bucket/fail/{inference_id}-error.out",
        )
    for row in done:
        completed = T0 + (row + lag) / RATE - rng.uniform(0.0, 5.0)
        yield Event(
            row,
            1,
            State.SUCCEEDED,
            completed + rng.uniform(0.1, 2.0),
            completed_at=completed,
            output_bytes=rng.randint(200, 20_000),
        )


def measure(run_dir: Path) -> None:
    batches = sorted((run_dir / "events").glob("b-*"))
    before = _best_of(3, Ledger.open(run_dir, writable=False).counts)
    print(
        f"before the measured compaction: {len(batches)} batch files of "
        f"{sum(p.stat().st_size for p in batches) / len(batches) / 1024:.1f} KiB on average; "
        f"counts() then takes {_ms(before)}"
    )
    with Ledger.open(run_dir) as ledger:
        tick = time.perf_counter()
        ledger.compact()
        print(f"compact(): {time.perf_counter() - tick:.2f} s")
        items = ledger.plan(["row"]).num_rows
    size = sum(p.stat().st_size for p in [run_dir / "plan.parquet", *run_dir.glob("events/*")])
    plan_size = (run_dir / "plan.parquet").stat().st_size
    print(
        f"on disk: {size / items:.1f} bytes/item "
        f"(plan {plan_size / items:.1f}, events {(size - plan_size) / items:.1f}; {size:,} bytes)"
    )
    reader = Ledger.open(run_dir, writable=False)
    counts = {str(k): v for k, v in reader.counts().items() if v}
    print(f"counts() on the compacted ledger: {_ms(_best_of(5, reader.counts))}; {counts}")
    print(f"peak RSS through compaction and counts(): {_rss_mb():.0f} MB")
    tick = time.perf_counter()
    frame = read_ledger(run_dir)
    print(
        f"read_ledger(): {time.perf_counter() - tick:.2f} s for {len(frame):,} rows; "
        f"peak RSS now {_rss_mb():.0f} MB"
    )


def _best_of(times: int, call: Callable[[], object]) -> float:
    timings = []
    for _ in range(times):
        tick = time.perf_counter()
        call()
        timings.append(time.perf_counter() - tick)
    return min(timings)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
