"""Latency-bound submission: every call takes a network round trip, as against AWS.

    python bench/run.py latency [--quick]

The emulator answers each InvokeEndpointAsync after 30-50 ms (``--network-latency-ms 40``), so
neither the client's CPU nor the server's limits the rate, but the round trip: at most
concurrency / latency calls a second (Little's law). The latency is the configured 40 ms plus
what the emulator and the client spend on a call on this shared machine, so each emulator's round
trip is measured first (one plain boto3 client, 50 calls one after another), and the ideal is
16 / that. Against it, and in the same run against a bare boto3 ``ThreadPoolExecutor`` of the
same 16 threads (the plain client, whose pool holds 10 connections, and the same client with
20), ``submit --no-wait --concurrency 16`` and ``submit --no-wait --rate R`` with R the ideal
(no --concurrency: the slots are picked from the rate and the latency learned).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from array import array
from pathlib import Path

from benchlib import (
    BULKINVOKE,
    ENDPOINT,
    PYTHON,
    Emulator,
    Figure,
    ratio_figure,
    run_measured,
    steady_window,
    submitted_times,
    write_manifest,
)

HERE = Path(__file__).resolve().parent
CONCURRENCY = 16
LATENCY = (0.030, 0.050)
NOMINAL_IDEAL = CONCURRENCY / statistics.fmean(LATENCY)
CLIENTS = ("bulkinvoke", "bulkinvoke --rate", "boto3 pool", "boto3 pool, 16 connections")


def _rate(times: list[float]) -> float:
    start, end, calls = steady_window(times)
    return calls / (end - start)


def _round_trip(emulator: Emulator) -> float:
    """Mean seconds of one call, nothing else running (a plain boto3 client)."""
    import boto3

    env = emulator.env()
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=emulator.sagemaker_url,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    location = "s3://bench-in/round-trip.json"
    client.invoke_endpoint_async(EndpointName=ENDPOINT, InputLocation=location)
    started = time.perf_counter()
    for _ in range(50):
        client.invoke_endpoint_async(EndpointName=ENDPOINT, InputLocation=location)
    return (time.perf_counter() - started) / 50


def _measure(client: str, manifest: Path, directory: Path) -> tuple[float, float]:
    """(the client's steady rate, the emulator's round trip)."""
    with Emulator(workers=1) as emulator:
        # One worker taking 1,000 s per job: no output is written during the run, so the
        # emulator's CPU goes to answering calls, as the service's would, not to moto.
        emulator.configure(network_latency=f"uniform:{LATENCY[0]}-{LATENCY[1]}", latency="1000")
        emulator.warm_up()
        trip = _round_trip(emulator)
        if client.startswith("bulkinvoke"):
            run_dir = directory / client.replace(" ", "-")
            command = [BULKINVOKE, "submit", str(manifest), "--endpoint", ENDPOINT, "--no-wait"]
            command += ["--quiet", "--run-dir", str(run_dir)]
            sized = ["--rate", f"{CONCURRENCY / trip:.1f}"]
            command += sized if "--rate" in client else ["--concurrency", str(CONCURRENCY)]
            run_measured(command, env=emulator.env())
            return _rate(submitted_times(run_dir)), trip
        times = directory / "times"
        config = "bulkinvoke" if "16 connections" in client else "default"
        command = [PYTHON, str(HERE / "boto3_loop.py"), str(manifest), "--endpoint", ENDPOINT]
        command += ["--concurrency", str(CONCURRENCY), "--config", config, "--times", str(times)]
        run_measured(command, env=emulator.env())
        return _rate(array("d", times.read_bytes()).tolist()), trip


def run(quick: bool) -> list[Figure]:
    items = 2_000 if quick else 6_000
    pairs = 1 if quick else 2
    rates: dict[str, list[float]] = {client: [] for client in CLIENTS}
    trips: list[float] = []
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        manifest = write_manifest(directory / "manifest.csv", items, "latency")
        for i in range(pairs):
            for client in CLIENTS if i % 2 == 0 else reversed(CLIENTS):
                rate, trip = _measure(client, manifest, directory)
                rates[client].append(rate)
                trips.append(trip)
                print(
                    f"  {client:28s} {rate:6.0f} calls/s (round trip {1000 * trip:.1f} ms)",
                    flush=True,
                )
    mean = {client: statistics.fmean(values) for client, values in rates.items()}
    ideal = CONCURRENCY / statistics.fmean(trips)
    how = f"{items:,} items, network latency 30-50 ms, mean of {pairs} ABBA-ordered runs"
    return [
        ratio_figure(
            "latency-bound: submit --concurrency 16 vs ideal",
            mean["bulkinvoke"],
            ideal,
            "calls/s",
            at_least=0.95,
            note=f"ideal: 16 / the round trip measured ({1000 * 16 / ideal:.1f} ms); {how}",
        ),
        ratio_figure(
            "(info) the same vs 16 / 40 ms",
            mean["bulkinvoke"],
            NOMINAL_IDEAL,
            "calls/s",
            note="the configured latency alone, without what the emulator spends per call",
        ),
        ratio_figure(
            "latency-bound: submit vs boto3 pool, 16 threads",
            mean["bulkinvoke"],
            mean["boto3 pool"],
            "calls/s",
            at_least=1.0,
            note="the plain boto3 client (its pool: 10 connections)",
        ),
        ratio_figure(
            "latency-bound: submit vs boto3 pool, 16 connections",
            mean["bulkinvoke"],
            mean["boto3 pool, 16 connections"],
            "calls/s",
            at_least=1.0,
            note="boto3 with max_pool_connections 20, as bulkinvoke configures it",
        ),
        ratio_figure(
            "latency-bound: submit --rate (ideal), no --concurrency",
            mean["bulkinvoke --rate"],
            ideal,
            "calls/s",
            at_least=0.95,
            note="slots picked from --rate and the latency learned (Little's law)",
        ),
    ]
