"""Submission rate and client CPU per submission of ``bulkinvoke submit --no-wait`` (ledger on),
against a bare boto3 ``ThreadPoolExecutor`` loop at the same concurrency (no ledger) and an
``aws sagemaker-runtime invoke-endpoint-async`` shell loop.

    python bench/run.py submit [--quick]

Each client runs as a process of its own, measured from outside, against an emulator process of
its own. The end-to-end rate is items / wall time of the whole command (start-up and manifest
reading included); the steady rate and the CPU per submission cover the calls between the 10th
and the 90th percentile of completion times (the ledger's ``submitted_at`` for bulkinvoke), the
client's CPU sampled from /proc meanwhile. The boto3 and bulkinvoke runs alternate (ABBA...), so
that a drift in the machine's load falls on both.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    AWS_CLI,
    BULKINVOKE,
    ENDPOINT,
    INPUT_BUCKET,
    PYTHON,
    Emulator,
    Figure,
    Measured,
    ratio_figure,
    run_measured,
    steady_window,
    submitted_times,
    write_manifest,
)

CONCURRENCY = 16
AWS_CLI_CALLS = 20
HERE = Path(__file__).resolve().parent
# The clients compared: bulkinvoke, the boto3 loop with a default client, the boto3 loop with
# the client bulkinvoke makes (its botocore Config), for information.
BULKINVOKE_CLI, BOTO3_DEFAULT, BOTO3_TUNED = "bulkinvoke", "boto3 loop", "boto3 loop, tuned"


@dataclass(frozen=True)
class ClientRun:
    end_to_end: float  # items / wall seconds
    steady: float  # calls / second in the steady window
    cpu_ms: float  # client CPU milliseconds per call in the steady window
    ceiling: float  # accepted calls / second of the raw load generator on the same emulator

    def __str__(self) -> str:
        return (
            f"end to end {self.end_to_end:7,.0f}/s  steady {self.steady:7,.0f}/s  "
            f"CPU {self.cpu_ms:.3f} ms/call  (emulator ceiling {self.ceiling:,.0f}/s)"
        )


def _analyse(measured: Measured, items: int, times: list[float], ceiling: float) -> ClientRun:
    if len(times) != items:
        raise RuntimeError(f"expected {items} accepted calls, found {len(times)}")
    start, end, calls = steady_window(times)
    return ClientRun(
        items / measured.wall,
        calls / (end - start),
        1000 * measured.cpu_between(start, end) / calls,
        ceiling,
    )


def _bulkinvoke(emulator: Emulator, manifest: Path, run_dir: Path) -> tuple[Measured, list[float]]:
    command = [BULKINVOKE, "submit", str(manifest), "--endpoint", ENDPOINT, "--no-wait"]
    command += ["--concurrency", str(CONCURRENCY), "--quiet", "--run-dir", str(run_dir)]
    measured = run_measured(command, env=emulator.env(), sample_cpu=True)
    return measured, submitted_times(run_dir)


def _boto3(emulator: Emulator, manifest: Path, config: str) -> tuple[Measured, list[float]]:
    with tempfile.NamedTemporaryFile() as times_file:
        command = [PYTHON, str(HERE / "boto3_loop.py"), str(manifest), "--endpoint", ENDPOINT]
        command += ["--concurrency", str(CONCURRENCY), "--config", config]
        command += ["--times", times_file.name]
        measured = run_measured(command, env=emulator.env(), sample_cpu=True)
        return measured, array("d", Path(times_file.name).read_bytes()).tolist()


def measure(client: str, manifest: Path, run_dir: Path, items: int) -> ClientRun:
    """One client run against an emulator of its own, warmed up first.

    A fresh emulator for every run: its heap grows with every call it takes (jobs, moto's
    objects), and with it the pauses of its garbage collector (half a second at ~10,000 calls
    on this machine), which a client run later in an emulator's life would meet more of."""
    with Emulator(workers=16) as emulator:
        emulator.warm_up()
        if client == BULKINVOKE_CLI:
            measured, times = _bulkinvoke(emulator, manifest, run_dir)
        else:
            config = "bulkinvoke" if client == BOTO3_TUNED else "default"
            measured, times = _boto3(emulator, manifest, config)
        # Measured after the client: at full speed it leaves a backlog of jobs whose processing
        # would compete with the client measured.
        ceiling = emulator.ceiling(seconds=2.0, threads=CONCURRENCY)
    return _analyse(measured, items, times, ceiling)


def aws_cli_rate(calls: int) -> float:
    """Calls per second of the shell loop a user would write around the aws CLI."""
    script = (
        'for i in $(seq 1 "$CALLS"); do '
        '"$AWS" sagemaker-runtime invoke-endpoint-async --endpoint-url "$URL" '
        '--endpoint-name "$ENDPOINT" --input-location "s3://$BUCKET/cli/$i.json" '
        '--inference-id "cli-$i" > /dev/null || exit 1; done'
    )
    with Emulator(workers=16) as emulator:
        env = emulator.env()
        env.update(
            CALLS=str(calls),
            AWS=AWS_CLI,
            URL=emulator.sagemaker_url,
            ENDPOINT=ENDPOINT,
            BUCKET=INPUT_BUCKET,
        )
        started = time.perf_counter()
        subprocess.run(["bash", "-c", script], env=env, check=True)
        return calls / (time.perf_counter() - started)


def run(quick: bool) -> list[Figure]:
    items = 5_000 if quick else 20_000
    pairs = 1 if quick else 2
    runs: dict[str, list[ClientRun]] = {BULKINVOKE_CLI: [], BOTO3_DEFAULT: []}
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        manifest = write_manifest(base / "manifest.csv", items, "submit")
        for i in range(pairs):
            # ABBA: the order alternates, so a drift in the machine's load falls on both.
            pair = (BOTO3_DEFAULT, BULKINVOKE_CLI)
            for client in pair if i % 2 == 0 else reversed(pair):
                runs[client].append(measure(client, manifest, base / f"run-{i}", items))
                print(f"  {client:18s} {runs[client][-1]}", flush=True)
        tuned = measure(BOTO3_TUNED, manifest, base / "unused", items)
        print(f"  {BOTO3_TUNED:18s} {tuned}", flush=True)
    aws_rate = aws_cli_rate(AWS_CLI_CALLS)
    print(f"  aws CLI shell loop: {aws_rate:.2f} calls/s over {AWS_CLI_CALLS} calls", flush=True)

    def mean(client: str, field: str) -> float:
        return statistics.fmean(getattr(run, field) for run in runs[client])

    ceiling = statistics.median(r.ceiling for r in [*runs[BULKINVOKE_CLI], *runs[BOTO3_DEFAULT]])
    fastest = max(mean(BULKINVOKE_CLI, "steady"), mean(BOTO3_DEFAULT, "steady"))
    shared = f"{items:,} items, concurrency {CONCURRENCY}, mean of {pairs} ABBA-ordered runs"
    return [
        ratio_figure(
            "submit --no-wait, steady rate",
            mean(BULKINVOKE_CLI, "steady"),
            mean(BOTO3_DEFAULT, "steady"),
            "calls/s",
            at_least=0.95,
            note=f"baseline: bare boto3 loop (default client); {shared}",
        ),
        ratio_figure(
            "submit --no-wait, end to end",
            mean(BULKINVOKE_CLI, "end_to_end"),
            mean(BOTO3_DEFAULT, "end_to_end"),
            "calls/s",
            at_least=0.95,
            note="the whole command: start-up, manifest, plan included",
        ),
        ratio_figure(
            "submit --no-wait vs aws CLI loop",
            mean(BULKINVOKE_CLI, "end_to_end"),
            aws_rate,
            "calls/s",
            at_least=100,
            note=f"aws CLI: {AWS_CLI_CALLS} calls in a bash loop",
        ),
        ratio_figure(
            "client CPU per submission",
            mean(BULKINVOKE_CLI, "cpu_ms"),
            mean(BOTO3_DEFAULT, "cpu_ms"),
            "ms",
            at_most=1.1,
            note="steady window; baseline: bare boto3 loop (default client)",
        ),
        ratio_figure(
            "(info) boto3 loop, bulkinvoke's Config",
            tuned.cpu_ms,
            mean(BOTO3_DEFAULT, "cpu_ms"),
            "ms",
            note=f"CPU per call; steady rate {tuned.steady:,.0f}/s",
        ),
        Figure(
            "(info) emulator ceiling",
            ceiling,
            "calls/s",
            note=f"raw keep-alive client, {CONCURRENCY} connections; "
            f"{ceiling / fastest:.1f}x the fastest client",
        ),
    ]
