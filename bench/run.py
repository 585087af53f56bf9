"""Run the benchmark suite and print each figure against its baseline from the same run.

    python bench/run.py [BENCHMARK ...] [--quick] [--markdown FILE]
    ./dev bench [...]

Benchmarks: submit (submission rate and client CPU), commit (what waiting for the journal costs),
crash (kill -9 at random instants: items lost, duplicates per kill), rate (--rate accuracy),
adapt (slow start and adaptation to a throttling endpoint), watch (what the endpoint check and
the metrics watch cost a short run), collect (S3 requests per result),
scale (1,000,000-row manifest and ledger), startup (``bulkinvoke --help``). Default: all of them,
in a few minutes; ``--quick`` shortens the long ones. Figures are ratios to a baseline measured in
the same run, because absolute numbers drift on a shared machine; a missed target is reported,
never an error exit.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchlib import Figure, machine

BENCHMARKS = {
    "submit": "bench_submit",
    "commit": "bench_commit",
    "crash": "bench_crash",
    "latency": "bench_latency",
    "short": "bench_short",
    "stage": "bench_stage",
    "watch": "bench_watch",
    "rate": "bench_rate",
    "adapt": "bench_adapt",
    "collect": "bench_collect",
    "scale": "bench_scale",
    "startup": "bench_startup",
}


def _value(number: float | None) -> str:
    if number is None:
        return "-"
    if abs(number) >= 100:
        return f"{number:,.0f}"
    # Three significant digits, trailing zeros kept: 1.00, not 1.
    return f"{number:#.3g}".rstrip(".")


def _rows(figures: list[Figure]) -> list[list[str]]:
    verdicts = {True: "pass", False: "FAIL", None: ""}
    return [
        [
            f.name,
            f"{_value(f.value)} {f.unit}",
            _value(f.baseline),
            "-" if f.ratio is None else f"{f.ratio:.3g}x",
            f.target,
            verdicts[f.passed],
            f.note,
        ]
        for f in figures
    ]


HEADER = ["figure", "value", "baseline", "ratio", "target", "result", "how"]


def text_table(figures: list[Figure]) -> str:
    rows = [HEADER, *_rows(figures)]
    # The last column (the notes) is not padded: it is long and ends the line.
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(figures)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("benchmarks", nargs="*", metavar="BENCHMARK", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="shorter runs (~10 s each)")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args()
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    chosen = args.benchmarks or list(BENCHMARKS)
    command = " ".join(["python bench/run.py", *sys.argv[1:]])
    about = machine()
    print(f"$ {command}")
    for key, value in about.items():
        print(f"{key}: {value}")
    print("emulator and clients share these cores; every figure is a ratio from this run\n")
    figures: list[Figure] = []
    started = time.perf_counter()
    for name in chosen:
        print(f"[{name}]", flush=True)
        run: Callable[[bool], list[Figure]] = importlib.import_module(BENCHMARKS[name]).run
        tick = time.perf_counter()
        figures.extend(run(args.quick))
        print(f"  ({time.perf_counter() - tick:.0f} s)\n", flush=True)
    print(text_table(figures))
    print(f"\n{len(chosen)} benchmark(s) in {time.perf_counter() - started:.0f} s")
    if args.markdown:
        details = "\n".join(f"- {key}: {value}" for key, value in about.items())
        args.markdown.write_text(
            f"Command: `{command}`\n\n{details}\n\n{markdown_table(figures)}\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main()
