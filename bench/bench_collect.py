"""S3 requests per completed item while collecting results: bulkinvoke's ``Collector`` driven by
its ``SweepSchedule`` (as the engine drives them) against a per-item HEAD poller.

    python bench/run.py collect [--quick]

10,000 attempts (2,000 with --quick) are outstanding from the start; their output objects then
appear in the emulator's S3 (moto) at a steady pace, PUT by this process. Both strategies watch
the same objects at the same time, so they see the same arrivals, and each counts its own
requests until it has found every output. The poller HEADs every outstanding output once a
second (a round that takes longer than a second is followed at once by the next). Sharing moto
with the PUTs, its rounds take far longer than a second, which flatters it: the table also gives
what it would make if its HEADs took no time, computed from the actual arrival times.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchlib import FAILURE_PATH, FAKE_CREDENTIALS, OUTPUT_PATH, Emulator, Figure, ratio_figure
from botocore.exceptions import ClientError

from bulkinvoke.calls.aws import AwsSettings, make_clients
from bulkinvoke.results.collector import Collector, SweepSchedule, Watch
from bulkinvoke.states import State

POLL_INTERVAL_S = 1.0
# The poller's threads: more would slow moto, and with it the arrivals, for both strategies.
THREADS = 4
# Outputs per second, about what moto takes on 2 cores while the poller and the collector run.
PUT_RATE = 150.0


def _watches(items: int) -> list[Watch]:
    now = time.time()
    return [
        Watch(
            row,
            1,
            f"bi-collect-{row:09d}",
            f"{OUTPUT_PATH}/bi-collect-{row:09d}.out",
            f"{FAILURE_PATH}/bi-collect-{row:09d}-error.out",
            now,
            float("inf"),
        )
        for row in range(1, items + 1)
    ]


def _key(location: str) -> tuple[str, str]:
    bucket, _, key = location.removeprefix("s3://").partition("/")
    return bucket, key


def put_outputs(s3: Any, watches: list[Watch], per_second: float) -> list[float]:
    """PUT each watch's output at a steady pace (as far as moto keeps up); return when each
    PUT was answered, in seconds from the start."""
    started = time.monotonic()
    arrived: list[float] = []

    def put(bucket: str, key: str) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"result": 1}')
        arrived.append(time.monotonic() - started)

    with ThreadPoolExecutor(8) as pool:
        for i, watch in enumerate(watches):
            time.sleep(max(0.0, started + i / per_second - time.monotonic()))
            pool.submit(put, *_key(watch.output_location or ""))
    return arrived


def instant_poller_requests(arrived: list[float]) -> int:
    """The HEADs of a poller whose rounds, one a second from the start, take no time: an
    output is found by the first round at or after its arrival, HEADed once in every round
    until then."""
    return sum(math.ceil(t / POLL_INTERVAL_S) + 1 for t in arrived)


def collect(s3: Any, watches: list[Watch]) -> int:
    """Requests bulkinvoke's collector makes until it has found every output."""
    collector = Collector(s3)
    schedule = SweepSchedule()
    waiting = {(w.row, w.attempt): w for w in watches}
    while waiting:
        time.sleep(schedule.seconds_until_due())
        before = collector.requests.total
        found = 0
        for finding in collector.sweep(list(waiting.values())):
            if waiting.pop((finding.row, finding.attempt), None) is not None:
                found += finding.state is not State.EXPIRED
        schedule.swept(found, collector.requests.total - before)
    return collector.requests.total


def poll(s3: Any, watches: list[Watch]) -> int:
    """Requests a per-item HEAD poller makes until it has found every output."""
    outstanding = [_key(w.output_location or "") for w in watches]
    requests = 0

    def exists(address: tuple[str, str]) -> bool:
        try:
            s3.head_object(Bucket=address[0], Key=address[1])
        except ClientError:
            return False
        return True

    with ThreadPoolExecutor(THREADS) as pool:
        while outstanding:
            round_started = time.monotonic()
            found = list(pool.map(exists, outstanding))
            requests += len(outstanding)
            outstanding = [a for a, seen in zip(outstanding, found, strict=True) if not seen]
            time.sleep(max(0.0, round_started + POLL_INTERVAL_S - time.monotonic()))
    return requests


def run(quick: bool) -> list[Figure]:
    items = 2_000 if quick else 10_000
    watches = _watches(items)
    counts: dict[str, int] = {}
    with Emulator(workers=1) as emulator:
        settings = AwsSettings(
            s3_endpoint_url=emulator.s3_url,
            static_credentials=(
                FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            ),
        )
        s3 = make_clients(settings, max_connections=THREADS + 8).s3

        def count(name: str, strategy: Any) -> None:
            counts[name] = strategy(s3, watches)

        strategies = [
            threading.Thread(target=count, args=("collector", collect)),
            threading.Thread(target=count, args=("poller", poll)),
        ]
        for strategy in strategies:
            strategy.start()
        arrived = put_outputs(s3, watches, PUT_RATE)
        for strategy in strategies:
            strategy.join()
    collector, poller = counts["collector"] / items, counts["poller"] / items
    instant = instant_poller_requests(arrived) / items
    arrivals = max(arrived)
    print(
        f"  {items:,} outputs arrived over {arrivals:.1f} s; requests: collector "
        f"{counts['collector']:,}, HEAD poller {counts['poller']:,} (one with instant HEADs: "
        f"{instant * items:,.0f})",
        flush=True,
    )
    return [
        Figure(
            "S3 requests per completed item",
            collector,
            "requests",
            "< 0.05",
            collector < 0.05,
            note=f"{items:,} outstanding, outputs arriving over {arrivals:.0f} s",
        ),
        ratio_figure(
            "  the same vs a per-item HEAD poller",
            collector,
            poller,
            "requests",
            at_most=0.05,
            note=f"poller: HEAD each outstanding output every {POLL_INTERVAL_S:g} s, "
            f"{poller / collector:.0f}x the requests; with instant HEADs {instant:.1f} per item",
        ),
    ]
