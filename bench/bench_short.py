"""Short runs against an endpoint that is not ours: the whole process, start-up to exit.

    python bench/run.py short [--quick]

The endpoint is ``bench/fake_endpoint.py`` in a process of its own (a plain threaded HTTP server,
as any third party's), answering as fast as it can: the server is the bottleneck, not the
client. ``bulkinvoke submit --no-wait --concurrency 8`` against a bare boto3 pool of 8 threads
(the plain client), each run a fresh process on the same server, ABBA-ordered; items / wall
time of the whole process, so start-up, the manifest, the plan and the end of the run count.
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
    Figure,
    client_env,
    ratio_figure,
    run_measured,
    write_manifest,
)

HERE = Path(__file__).resolve().parent
CONCURRENCY = 8


def _start_endpoint() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [PYTHON, str(HERE / "fake_endpoint.py"), "--output", "s3://short-out/out"],
        stdout=subprocess.PIPE,
        text=True,
        env=client_env({}),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line.strip().partition("=")[2]


def _wall(client: str, manifest: Path, run_dir: Path, url: str) -> float:
    env = client_env(
        {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": url, "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}
    )
    if client == "bulkinvoke":
        command = [BULKINVOKE, "submit", str(manifest), "--endpoint", ENDPOINT, "--no-wait"]
        command += ["--concurrency", str(CONCURRENCY), "--quiet", "--run-dir", str(run_dir)]
        # bench/fake_endpoint.py serves the runtime only (the baseline describes nothing either).
        command.append("--no-check-endpoint")
    else:
        command = [PYTHON, str(HERE / "boto3_loop.py"), str(manifest), "--endpoint", ENDPOINT]
        command += ["--concurrency", str(CONCURRENCY)]
    return run_measured(command, env=env).wall


def run(quick: bool) -> list[Figure]:
    sizes = (3_000,) if quick else (3_000, 12_000)
    pairs = 1 if quick else 2
    figures = []
    process, url = _start_endpoint()
    try:
        with tempfile.TemporaryDirectory() as name:
            directory = Path(name)
            for items in sizes:
                rates: dict[str, list[float]] = {"boto3 pool": [], "bulkinvoke": []}
                for i in range(pairs * 2):
                    client = ("boto3 pool", "bulkinvoke", "bulkinvoke", "boto3 pool")[i % 4]
                    manifest = write_manifest(directory / f"m-{items}-{i}.csv", items, f"s{i}")
                    wall = _wall(client, manifest, directory / f"run-{items}-{i}", url)
                    rates[client].append(items / wall)
                    print(f"  {items:6,} items  {client:11s} {items / wall:7,.0f}/s", flush=True)
                figures.append(
                    ratio_figure(
                        f"server-bound, {items:,} items, whole process",
                        statistics.fmean(rates["bulkinvoke"]),
                        statistics.fmean(rates["boto3 pool"]),
                        "calls/s",
                        at_least=0.95,
                        note=f"submit --no-wait --concurrency {CONCURRENCY} vs a boto3 pool of "
                        f"{CONCURRENCY} threads; bench/fake_endpoint.py in its own process; "
                        f"mean of {pairs} ABBA-ordered pairs",
                    )
                )
    finally:
        process.terminate()
        process.wait()
    return figures
