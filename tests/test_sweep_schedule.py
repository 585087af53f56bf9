"""When the collector sweeps S3 for results, on an injected clock."""

from __future__ import annotations

import pytest

from bulkinvoke.results.collector import SweepSchedule


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _intervals(schedule: SweepSchedule, clock: Clock, sweeps: list[tuple[int, int]]) -> list[float]:
    seen = []
    for found, requests in sweeps:
        clock.now += schedule.seconds_until_due()
        assert schedule.due()
        schedule.swept(found, requests)
        seen.append(round(schedule.seconds_until_due(), 3))
    return seen


def test_quiet_sweeps_back_off_but_the_last_results_are_seen_within_seconds() -> None:
    clock = Clock()
    schedule = SweepSchedule(clock=clock)
    quiet = _intervals(schedule, clock, [(0, 1)] * 12)
    assert quiet[:3] == [0.375, 0.562, 0.844]
    assert max(quiet) == quiet[-1] == 5.0


def test_a_flood_of_results_is_swept_often_and_a_trickle_rarely() -> None:
    clock = Clock()
    flood = SweepSchedule(clock=clock)
    clock.now = 1.0
    flood.swept(found=1000, requests=2)  # 1,000 results a second: cheap per result
    assert flood.seconds_until_due() == flood.min_interval
    trickle = SweepSchedule(clock=clock)
    clock.now = 11.0
    trickle.swept(found=1, requests=20)  # one result in 10 s, for 20 LIST pages
    assert trickle.seconds_until_due() == pytest.approx(20 / (0.02 * 0.1 + 5.0))


def test_a_run_held_back_by_max_in_flight_sweeps_again_soon() -> None:
    clock = Clock()
    schedule = SweepSchedule(clock=clock)
    _intervals(schedule, clock, [(0, 1)] * 8)
    schedule.hurry()
    assert schedule.seconds_until_due() == schedule.min_interval
