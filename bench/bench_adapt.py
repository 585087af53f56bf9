"""Adaptation: ``bulkinvoke submit --rate 500 --no-wait`` against an emulator that takes 50 calls
a second and throttles the rest, and the slow start against one with no limit.

    python bench/run.py adapt [--quick]

Three runs, each against an emulator of its own:

* short: 600 items (about 12 s at capacity), the throttled share of the whole run, its start
  included: the case a benchmark that counts from 5 s in would hide;
* long: 35 s of items (15 s with --quick): the sustained rate and the throttled share from 5 s
  after the first call, and over the whole run;
* ramp: 3,000 items with no limit on the endpoint: how long after the first call the rate reaches
  95% of --rate (the slow start's cost).

The emulator's own counters (``GET /_emulator/stats``), polled every 0.1 s while the command
runs, give accepted and throttled calls over time. The endpoint throttles with a token bucket of
one second's burst; the call latency is loopback's.
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
SHORT_ITEMS = 600
RAMP_ITEMS = 3_000
SETTLE_S = 5.0
POLL_S = 0.1

Sample = tuple[float, int, int]  # (monotonic time, accepted, throttled)


def _poll(emulator: Emulator, samples: list[Sample], done: threading.Event) -> None:
    while not done.wait(POLL_S):
        stats = emulator.stats()
        samples.append((time.monotonic(), stats["accepted"], stats["throttled"]))


def _submit(capacity: float | None, items: int) -> list[Sample]:
    """The emulator's counters over a run of ``items`` at --rate RATE."""
    samples: list[Sample] = []
    done = threading.Event()
    with (
        Emulator(workers=16, capacity=capacity) as emulator,
        tempfile.TemporaryDirectory() as directory,
    ):
        emulator.warm_up()
        base = emulator.stats()
        samples.append((time.monotonic(), base["accepted"], base["throttled"]))
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
    samples.append((time.monotonic(), final["accepted"], final["throttled"]))
    # Counted from this run's first call (the warm-up's calls are in the counters too).
    first = next(i for i, s in enumerate(samples) if s[1] + s[2] > base["accepted"])
    return [(t, a - base["accepted"], r - base["throttled"]) for t, a, r in samples[first - 1 :]]


def window(samples: list[Sample], skip_s: float) -> tuple[float, float, float]:
    """(seconds, accepted per second, throttled share) from ``skip_s`` after the first call to
    the last acceptance."""
    start = samples[0][0] + skip_s
    first = next(s for s in samples if s[0] >= start) if skip_s else samples[0]
    last = next(s for s in samples if s[1] == samples[-1][1])
    accepted, throttled = last[1] - first[1], last[2] - first[2]
    seconds = last[0] - first[0]
    return seconds, accepted / seconds, throttled / max(accepted + throttled, 1)


def ramp_seconds(samples: list[Sample]) -> float:
    """Seconds from the first call until a 0.5 s window holds 95% of --rate's calls."""
    for i, (t, accepted, _) in enumerate(samples):
        later = next((s for s in samples[i:] if s[0] >= t + 0.5), None)
        if later is not None and (later[1] - accepted) / (later[0] - t) >= 0.95 * RATE:
            return t - samples[0][0]
    return float("inf")


def _share_figure(name: str, share: float, note: str) -> Figure:
    return Figure(name, 100 * share, "% of calls", "< 5%", share < 0.05, note=note)


def run(quick: bool) -> list[Figure]:
    short = _submit(CAPACITY, SHORT_ITEMS)
    _, _, short_share = window(short, 0.0)
    long = _submit(CAPACITY, CAPACITY * (15 if quick else 35))
    seconds, sustained, settled_share = window(long, SETTLE_S)
    _, _, long_share = window(long, 0.0)
    ramp = ramp_seconds(_submit(None, RAMP_ITEMS))
    print(
        f"  short run: {short[-1][1]} accepted, {short[-1][2]} throttled ({short_share:.1%}); "
        f"long run: {sustained:.1f}/s after {SETTLE_S:g} s, {settled_share:.1%} throttled then, "
        f"{long_share:.1%} in all; no limit: --rate reached after {ramp:.2f} s",
        flush=True,
    )
    settled = f"{seconds:.0f} s from {SETTLE_S:g} s after the first call; emulator's counters"
    return [
        _share_figure(
            f"--rate {RATE} vs capacity {CAPACITY}/s, {SHORT_ITEMS} items: throttled",
            short_share,
            "the whole run, its start included: throttled / (accepted + throttled)",
        ),
        ratio_figure(
            f"--rate {RATE} vs capacity {CAPACITY}/s: sustained",
            sustained,
            CAPACITY,
            "calls/s",
            at_least=0.9,
            note=settled,
        ),
        _share_figure(
            f"--rate {RATE} vs capacity {CAPACITY}/s: throttled, settled",
            settled_share,
            settled,
        ),
        _share_figure(
            f"--rate {RATE} vs capacity {CAPACITY}/s: throttled, whole run",
            long_share,
            "the same run from its first call",
        ),
        Figure(
            f"--rate {RATE}, no limit: slow start reaches the rate after",
            ramp,
            "s",
            "< 2 s",
            ramp < 2,
            note=f"{RAMP_ITEMS:,} items; first 0.5 s window with 95% of --rate's calls",
        ),
    ]
