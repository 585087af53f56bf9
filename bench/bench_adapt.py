"""Adaptation: ``bulkinvoke submit --rate 500 --no-wait`` against an emulator that takes 50 calls
a second and throttles the rest, for about 35 s (15 s with --quick).

    python bench/run.py adapt [--quick]

The emulator's own counters (``GET /_emulator/stats``), polled every half second while the
command runs, give accepted and throttled calls over time. Time zero is the first poll that saw
a call; the figures cover from 5 s after it to the poll that saw the last acceptance.
"""

from __future__ import annotations

import tempfile
import threading
import time
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

CAPACITY = 50
RATE = 500
SETTLE_S = 5.0
POLL_S = 0.5

Sample = tuple[float, int, int]  # (monotonic time, accepted, throttled)


def _poll(emulator: Emulator, samples: list[Sample], done: threading.Event) -> None:
    while not done.wait(POLL_S):
        stats = emulator.stats()
        samples.append((time.monotonic(), stats["accepted"], stats["throttled"]))


def settled(samples: list[Sample]) -> tuple[float, float, float]:
    """(seconds, accepted per second, throttled share) from SETTLE_S after the first call to
    the last acceptance."""
    start = next(t for t, accepted, throttled in samples if accepted + throttled) + SETTLE_S
    first = next(s for s in samples if s[0] >= start)
    last = next(s for s in samples if s[1] == samples[-1][1])
    accepted, throttled = last[1] - first[1], last[2] - first[2]
    seconds = last[0] - first[0]
    return seconds, accepted / seconds, throttled / max(accepted + throttled, 1)


def run(quick: bool) -> list[Figure]:
    # At capacity, the run lasts about this long; the figures start 5 s into it.
    items = CAPACITY * (15 if quick else 35)
    samples: list[Sample] = []
    done = threading.Event()
    with (
        Emulator(workers=16, capacity=CAPACITY) as emulator,
        tempfile.TemporaryDirectory() as directory,
    ):
        emulator.warm_up()
        manifest = write_manifest(Path(directory) / "manifest.csv", items, "adapt")
        command = [BULKINVOKE, "submit", str(manifest), "--endpoint", ENDPOINT, "--no-wait"]
        command += ["--rate", str(RATE), "--quiet", "--run-dir", str(Path(directory) / "run")]
        poller = threading.Thread(target=_poll, args=(emulator, samples, done))
        poller.start()
        try:
            run_measured(command, env=emulator.env(), ok=(0, 1))
        finally:
            done.set()
            poller.join()
        final = emulator.stats()
    seconds, sustained, throttled = settled(samples)
    print(
        f"  accepted {final['accepted']}, throttled {final['throttled']} in all; "
        f"after {SETTLE_S:g} s: {sustained:.1f}/s over {seconds:.1f} s, "
        f"{throttled:.1%} throttled",
        flush=True,
    )
    window = f"{seconds:.0f} s from {SETTLE_S:g} s after the first call; emulator's counters"
    return [
        ratio_figure(
            f"--rate {RATE} vs capacity {CAPACITY}/s: sustained",
            sustained,
            CAPACITY,
            "calls/s",
            at_least=0.9,
            note=window,
        ),
        Figure(
            f"--rate {RATE} vs capacity {CAPACITY}/s: throttled",
            100 * throttled,
            "% of calls",
            "< 10%",
            throttled < 0.1,
            note="throttled / (accepted + throttled), same window",
        ),
    ]
