"""Crash figures: ``kill -9`` at random instants of a real ``bulkinvoke submit`` sending 5,000 items
at ``--rate 300``, 50 times, then one session to the end; for ``--in-doubt resend`` and ``wait``.

    python bench/run.py crash [--quick]

The endpoint is ``bench/fake_endpoint.py`` (not the project's emulator), whose outputs land
2-5 s after acceptance, as from a real queue: a call accepted just before a kill has no output
yet when the next session starts. Each session waits a random 0.2-1.4 s (start-up included, so
some die before sending anything) and is killed; the run is continued by running the same
``submit`` again. Figures: items lost (every row must end ``succeeded`` and every input reach
the endpoint), and the calls the endpoint accepted more than once per kill, against the bound
the README states (``--concurrency``). ``--quick``: 15 kills of 1,500 items.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import BULKINVOKE, FAKE_CREDENTIALS, Figure, client_env
from fake_endpoint import FakeEndpoint, FakeEndpointSettings

RATE = 300
CONCURRENCY = 8
OUTPUT_DELAY = (2.0, 5.0)
KILL_AFTER = (0.2, 1.4)


def _moto() -> tuple[object, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def _crash_run(
    mode: str, items: int, kills: int, s3_url: str, directory: Path, seed: int
) -> dict[str, float]:
    from bulkinvoke.export.frame import read_ledger

    endpoint = FakeEndpoint(
        FakeEndpointSettings(f"s3://crash-out-{mode}/out", OUTPUT_DELAY, writers=8), s3_url
    )
    try:
        manifest = directory / f"{mode}.csv"
        manifest.write_text(
            "input_location\n" + "".join(f"s3://crash-in/{mode}/{i}.json\n" for i in range(items))
        )
        run_dir = directory / f"run-{mode}"
        env = client_env(
            {"AWS_ENDPOINT_URL_S3": s3_url, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": endpoint.url}
        )
        submit = [BULKINVOKE, "submit", str(manifest), "--endpoint", "bench", "--run-dir"]
        submit += [str(run_dir), "--rate", str(RATE), "--concurrency", str(CONCURRENCY)]
        # bench/fake_endpoint.py serves the runtime only: no DescribeEndpoint to ask.
        submit += ["--in-doubt", mode, "--quiet", "--no-check-endpoint"]
        rng = random.Random(seed)
        killed = 0
        while killed < kills:
            process = subprocess.Popen(submit, env=env, stdout=subprocess.DEVNULL)
            time.sleep(rng.uniform(*KILL_AFTER))
            if process.poll() is not None:
                break  # the run finished before this kill: fewer kills than asked
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            killed += 1
        done = subprocess.run(
            [*submit[:-1], "--json"], env=env, capture_output=True, text=True, timeout=600
        )
        summary = json.loads(done.stdout)
        table = read_ledger(run_dir)
        accepted = endpoint.accepted()
    finally:
        endpoint.stop()
    lost = int((table["state"] != "succeeded").sum()) + len(
        set(table["inference_id"]) - set(accepted)
    )
    duplicates = sum(n - 1 for n in accepted.values())
    print(
        f"  --in-doubt {mode}: {killed} kills, {lost} items lost, {duplicates} duplicate calls "
        f"({duplicates / max(killed, 1):.2f} per kill, bound {CONCURRENCY}); last session exit "
        f"{done.returncode}, in doubt found {summary['in_doubt_found']}, resent "
        f"{summary['in_doubt_resent']}",
        flush=True,
    )
    return {"kills": killed, "lost": lost, "duplicates": duplicates}


def run(quick: bool) -> list[Figure]:
    items, kills = (1_500, 15) if quick else (5_000, 50)
    os.environ.update(FAKE_CREDENTIALS)
    server, s3_url = _moto()
    figures: list[Figure] = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            for seed, mode in enumerate(("resend", "wait")):
                result = _crash_run(mode, items, kills, s3_url, Path(directory), seed)
                per_kill = result["duplicates"] / max(result["kills"], 1)
                how = (
                    f"{result['kills']:.0f} kill -9 at random instants, {items:,} items, --rate "
                    f"{RATE}, --concurrency {CONCURRENCY}; bench/fake_endpoint.py, outputs "
                    f"{OUTPUT_DELAY[0]:g}-{OUTPUT_DELAY[1]:g} s after acceptance"
                )
                figures.append(
                    Figure(
                        f"crash, --in-doubt {mode}: items lost",
                        result["lost"],
                        "items",
                        "0",
                        result["lost"] == 0,
                        note=how,
                    )
                )
                bound = CONCURRENCY if mode == "resend" else 0
                figures.append(
                    Figure(
                        f"crash, --in-doubt {mode}: duplicate calls per kill",
                        per_kill,
                        "calls",
                        f"<= {bound}",
                        per_kill <= bound,
                        note=f"{result['duplicates']:.0f} calls accepted twice in all; bound: "
                        + ("--concurrency" if bound else "none repeated"),
                    )
                )
    finally:
        server.stop()  # type: ignore[attr-defined]
    return figures
