"""Time ``read_manifest`` on a generated manifest (1,000,000 rows by default) and its peak memory.

    .venv/bin/python bench/bench_manifest.py [--rows N] [--formats csv,txt,...]

The manifests are written in a temporary directory by this process; each is then read by a fresh
child process, so the peak RSS reported is that of one load, imports included, as the CLI sees it.
Formats: csv (input_location only), csv-quoted (the same, every value quoted: the csv module's
path), txt, jsonl, parquet, and csv-overrides (every override column set on every row,
inference_id unique per row).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

FORMATS = ("csv", "csv-quoted", "txt", "jsonl", "parquet", "csv-overrides")


def _uri(i: int) -> str:
    return f"s3://bucket/data/{i:09d}.json"


def _write_lines(path: Path, lines: Iterator[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.writelines(lines)


def generate(kind: str, rows: int, directory: Path) -> Path:
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = directory / "manifest.parquet"
        table = pa.table({"input_location": [_uri(i) for i in range(rows)]})
        pq.write_table(table, path)
        return path
    path = directory / f"manifest-{kind}.{kind.split('-')[0]}"
    if kind == "csv":
        _write_lines(path, ("input_location\n", *(f"{_uri(i)}\n" for i in range(rows))))
    elif kind == "csv-quoted":
        _write_lines(path, ('"input_location"\n', *(f'"{_uri(i)}"\n' for i in range(rows))))
    elif kind == "txt":
        _write_lines(path, (f"{_uri(i)}\n" for i in range(rows)))
    elif kind == "jsonl":
        _write_lines(path, (f'{{"input_location": "{_uri(i)}"}}\n' for i in range(rows)))
    else:
        header = (
            "input_location,content_type,accept,custom_attributes,inference_id,"
            "request_ttl_seconds,invocation_timeout_seconds\n"
        )
        body = (
            f"{_uri(i)},application/json,application/json,trace=on,id-{i},3600,900\n"
            for i in range(rows)
        )
        _write_lines(path, (header, *body))
    return path


def measure(path: str) -> dict[str, float]:
    """Run in the child: load the manifest once and report time and peak RSS."""
    start = time.perf_counter()
    from bulkinvoke.manifest.loader import read_manifest

    imported, cpu = time.perf_counter(), time.process_time()
    manifest = read_manifest(path)
    done, cpu_done = time.perf_counter(), time.process_time()
    assert not manifest.problems and not manifest.duplicates
    return {
        "rows": manifest.table.num_rows,
        "import_seconds": round(imported - start, 3),
        "read_seconds": round(done - imported, 3),
        # On a shared machine the CPU time varies less than the wall time.
        "read_cpu_seconds": round(cpu_done - cpu, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", default="csv,txt", help=f"comma-separated, of {FORMATS}")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    with tempfile.TemporaryDirectory() as directory:
        for kind in args.formats.split(","):
            path = generate(kind, args.rows, Path(directory))
            size = path.stat().st_size / 2**20
            child = [sys.executable, __file__, "--measure", str(path)]
            result = json.loads(subprocess.run(child, check=True, capture_output=True).stdout)
            print(
                f"{kind:14s} {result['rows']:>9,} rows  {size:6.1f} MiB  "
                f"read {result['read_seconds']:6.2f} s (CPU {result['read_cpu_seconds']:5.2f} s, "
                f"imports {result['import_seconds']:.2f} s)"
                f"  peak RSS {result['peak_rss_mib']:7.1f} MiB"
            )


if __name__ == "__main__":
    main()
