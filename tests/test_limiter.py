"""The rate limiter, driven by a fake clock: pacing, adaptation, and thread safety, no sleeping."""

from __future__ import annotations

import heapq
import random
import threading
from bisect import bisect_left
from collections.abc import Callable
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkinvoke.calls.limiter import RateLimiter


class FakeClock:
    """Time that moves only when someone sleeps (by ``overshoot`` more than asked, if set)."""

    def __init__(self, overshoot: float = 0.0, seed: int = 0) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._overshoot = overshoot
        self._rng = random.Random(seed)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds + self._rng.uniform(0.0, self._overshoot)


def most_in_one_second(times: list[float]) -> int:
    """The most calls in any window [t, t + 1 s) (less a nanosecond of rounding)."""
    return max(bisect_left(times, t + 1.0 - 1e-9) - i for i, t in enumerate(times))


def blocking_calls(limiter: RateLimiter, clock: FakeClock, seconds: float) -> list[float]:
    times = []
    while True:
        limiter.acquire()
        if clock.now >= seconds:
            return times
        times.append(clock.now)


def polling_calls(limiter: RateLimiter, clock: FakeClock, seconds: float) -> list[float]:
    times = []
    while clock.now < seconds:
        wait = limiter.try_acquire()
        if wait > 0:
            clock.sleep(wait)
        else:
            times.append(clock.now)
    return times


def test_rate_100_for_30_seconds_is_accurate_and_never_bursts() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep, slow_start=False)
    times = blocking_calls(limiter, clock, 30.0)
    assert 2990 <= len(times) <= 3000
    # The first window starts at the first call: the first second is held to the rate too.
    assert times[0] == 0.0
    assert most_in_one_second(times) <= 100


def test_sleep_overshoot_does_not_drift() -> None:
    # Each sleep lasts up to 2 ms longer than asked, a fifth of the interval at 100/s.
    clock = FakeClock(overshoot=0.002, seed=1)
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep, slow_start=False)
    assert len(blocking_calls(limiter, clock, 30.0)) >= 2990


def test_polling_with_late_wakeups_keeps_the_schedule() -> None:
    clock = FakeClock(overshoot=0.002, seed=2)
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep, slow_start=False)
    times = polling_calls(limiter, clock, 30.0)
    assert len(times) >= 2990
    # A late call followed by a punctual one is the only way to fit one more in a second.
    assert most_in_one_second(times) <= 101


def test_punctual_polling_matches_blocking() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep, slow_start=False)
    times = polling_calls(limiter, clock, 30.0)
    assert 2990 <= len(times) <= 3000
    assert most_in_one_second(times) <= 100


def test_try_acquire_does_not_take_a_slot_it_reports_as_busy() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(0.1)
    assert limiter.try_acquire() == pytest.approx(0.1)
    clock.now = 0.1
    assert limiter.try_acquire() == 0.0


def test_an_idle_spell_earns_no_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(50, clock=clock, sleep=clock.sleep, slow_start=False)
    blocking_calls(limiter, clock, 2.0)
    clock.now = 10.0
    times = blocking_calls(limiter, clock, 12.0)
    assert times[0] == pytest.approx(10.0, abs=0.03)
    assert most_in_one_second(times) <= 50
    assert min(b - a for a, b in pairwise(times)) == pytest.approx(0.02)


def test_slow_rates_space_calls_more_than_a_second_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.5, clock=clock, sleep=clock.sleep)
    times = blocking_calls(limiter, clock, 10.0)
    assert times == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0])


def test_unlimited_never_waits_until_the_endpoint_throttles() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    for _ in range(10_000):
        limiter.acquire()
        assert limiter.try_acquire() == 0.0
    limiter.on_success()
    assert clock.slept == []
    assert limiter.current_rate is None
    assert limiter.max_rate is None


def test_a_throttle_starts_pacing_below_the_rate_calls_were_going_out() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    for _ in range(200):
        limiter.acquire()
        clock.now += 0.005
    limiter.on_throttle()
    assert limiter.current_rate == pytest.approx(0.7 * 200, rel=0.02)
    assert limiter.max_rate is None
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() > 0.0


@pytest.mark.parametrize(
    "arguments",
    [
        {"max_rate": 0},
        {"max_rate": -5},
        {"max_rate": float("inf")},
        {"max_rate": 10, "decrease_factor": 1.0},
        {"max_rate": 10, "decrease_factor": 0.0},
        {"max_rate": 10, "cooldown": -1},
        {"max_rate": 10, "min_rate": 0},
        {"max_rate": 10, "increase_per_second": 0},
    ],
)
def test_nonsense_settings_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(**arguments)


def test_a_throttle_cuts_once_per_cooldown() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        100, clock=clock, sleep=clock.sleep, decrease_factor=0.5, cooldown=1.0, slow_start=False
    )
    limiter.on_throttle()
    assert limiter.current_rate == 50
    clock.now = 0.9
    limiter.on_throttle()
    limiter.on_success()
    assert limiter.current_rate == 50
    clock.now = 1.0
    limiter.on_throttle()
    assert limiter.current_rate == 25
    assert limiter.max_rate == 100


def test_the_rate_never_falls_below_the_floor() -> None:
    clock = FakeClock()
    limiter = RateLimiter(500, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        limiter.on_throttle()
        clock.now += 1.0
    assert limiter.current_rate == 5.0


def test_recovery_is_additive_and_capped_at_the_maximum() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep, cooldown=0.5, slow_start=False)
    limiter.on_throttle()
    assert limiter.current_rate == pytest.approx(70)
    clock.now = 0.5
    limiter.on_success()
    clock.now = 1.0
    limiter.on_success()
    # Below the band around 100 (the rate that throttled): +5/s, the default 5% of the maximum.
    assert limiter.current_rate == pytest.approx(72.5)
    for _ in range(2000):
        clock.now += 0.1
        limiter.on_success()
    assert limiter.current_rate == 100


def test_a_pause_counts_for_at_most_one_second_of_growth() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep, cooldown=0.0, slow_start=False)
    limiter.on_throttle()
    clock.now = 60.0
    limiter.on_success()
    assert limiter.current_rate == pytest.approx(75)


@given(
    st.lists(st.tuples(st.booleans(), st.floats(min_value=0.0, max_value=3.0)), max_size=200),
    st.floats(min_value=0.1, max_value=5000.0),
)
def test_the_rate_stays_between_floor_and_maximum(
    feedback: list[tuple[bool, float]], max_rate: float
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_rate, clock=clock, sleep=clock.sleep)
    floor = min(max_rate, max(1.0, 0.01 * max_rate))
    for throttled, elapsed in feedback:
        clock.now += elapsed
        limiter.on_throttle() if throttled else limiter.on_success()
        rate = limiter.current_rate
        assert rate is not None
        assert floor <= rate <= max_rate


class Server:
    """A token bucket standing for the service's capacity; an empty bucket means a throttle."""

    def __init__(self, capacity: Callable[[float], float], burst: float, clock: FakeClock) -> None:
        self.capacity = capacity
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._filled_at = 0.0

    def accepts(self) -> bool:
        now = self._clock()
        refill = (now - self._filled_at) * self.capacity(now)
        self._tokens = min(self.burst, self._tokens + refill)
        self._filled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def simulate(
    server: Server, limiter: RateLimiter, clock: FakeClock, seconds: int, latency: float
) -> tuple[list[int], list[int]]:
    """Drive the limiter as the engine does (polling), with answers arriving ``latency`` later.

    Returns the accepted and the throttled calls of each simulated second.
    """
    accepted = [0] * seconds
    throttled = [0] * seconds
    answers: list[tuple[float, int, bool, float]] = []
    sent = 0
    while clock.now < seconds:
        while answers and answers[0][0] <= clock.now:
            _, _, ok, sent_at = heapq.heappop(answers)
            limiter.on_success(sent_at) if ok else limiter.on_throttle(sent_at)
        wait = limiter.try_acquire()
        if wait > 0:
            clock.now = min(clock.now + wait, answers[0][0]) if answers else clock.now + wait
            continue
        ok = server.accepts()
        (accepted if ok else throttled)[int(clock.now)] += 1
        sent += 1
        heapq.heappush(answers, (clock.now + latency, sent, ok, clock.now))
    return accepted, throttled


@pytest.mark.parametrize("burst", [1, 5, 50])
@pytest.mark.parametrize("latency", [0.05, 0.2])
def test_adapts_to_a_server_ten_times_slower_than_the_maximum(burst: int, latency: float) -> None:
    clock = FakeClock()
    limiter = RateLimiter(500, clock=clock, sleep=clock.sleep)
    accepted, throttled = simulate(Server(lambda _: 50, burst, clock), limiter, clock, 60, latency)
    settled_accepted, settled_throttled = sum(accepted[5:]), sum(throttled[5:])
    assert settled_accepted / 55 >= 45
    assert settled_throttled / (settled_accepted + settled_throttled) < 0.10


def test_finds_capacity_that_appears_later() -> None:
    clock = FakeClock()
    limiter = RateLimiter(500, clock=clock, sleep=clock.sleep)
    server = Server(lambda now: 50 if now < 30 else 100, 50, clock)
    accepted, throttled = simulate(server, limiter, clock, 60, 0.05)
    assert sum(accepted[25:30]) / 5 <= 51
    assert sum(accepted[55:]) / 5 >= 90
    assert sum(throttled[55:]) <= 0.05 * sum(accepted[55:])


def test_concurrent_acquires_each_get_their_own_slot() -> None:
    clock = FakeClock()
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    # The clock stands still, so every acquire must reserve the slot after the previous one.
    limiter = RateLimiter(1000, clock=clock, sleep=record, slow_start=False)
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(250):
            limiter.acquire()
            limiter.on_success()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([i / 1000 for i in range(1, 2000)])


def test_feedback_from_many_threads_keeps_the_rate_in_bounds() -> None:
    clock = FakeClock()
    limiter = RateLimiter(200, clock=clock, sleep=clock.sleep, cooldown=0.0)
    start = threading.Barrier(6)

    def work(throttling: bool) -> None:
        start.wait()
        for _ in range(2000):
            limiter.on_throttle() if throttling else limiter.on_success()
            limiter.try_acquire()

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate = limiter.current_rate
    assert rate is not None
    assert 2.0 <= rate <= 200


def test_unlimited_adapts_to_a_throttling_server() -> None:
    # As the engine drives it: at most 16 calls in progress, each answered 20 ms later, which
    # alone would send 800 calls a second at a server that takes 50.
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    server = Server(lambda _: 50, 5, clock)
    accepted, throttled = [0] * 60, [0] * 60
    answers: list[tuple[float, int, bool]] = []
    sent = 0
    while clock.now < 60:
        while answers and answers[0][0] <= clock.now:
            _, _, ok = heapq.heappop(answers)
            limiter.on_success() if ok else limiter.on_throttle()
        if len(answers) >= 16:
            clock.now = answers[0][0]
            continue
        wait = limiter.try_acquire()
        if wait > 0:
            clock.now = min(clock.now + wait, answers[0][0]) if answers else clock.now + wait
            continue
        ok = server.accepts()
        (accepted if ok else throttled)[int(clock.now)] += 1
        sent += 1
        heapq.heappush(answers, (clock.now + 0.02, sent, ok))
    settled_accepted, settled_throttled = sum(accepted[5:]), sum(throttled[5:])
    assert settled_accepted / 55 >= 45
    assert settled_throttled / (settled_accepted + settled_throttled) < 0.10


# ---------------------------------------------------------------- slow start


def test_slow_start_begins_below_the_rate_and_reaches_it_within_two_seconds() -> None:
    clock = FakeClock()
    limiter = RateLimiter(500, clock=clock, sleep=clock.sleep)
    assert limiter.current_rate is not None and limiter.current_rate < 500 / 16
    # An endpoint with no limit: every call succeeds, answered 50 ms later.
    accepted, throttled = simulate(
        Server(lambda _: 1e9, 1e9, clock), limiter, clock, seconds=4, latency=0.05
    )
    assert sum(throttled) == 0
    assert limiter.current_rate == 500
    assert accepted[2] >= 0.99 * 500, "paced at --rate from the third second"


def test_slow_start_ignores_the_time_spent_setting_up_the_run() -> None:
    clock = FakeClock()
    limiter = RateLimiter(500, clock=clock, sleep=clock.sleep)
    start = limiter.current_rate
    clock.now = 30.0  # the manifest was read and the plan written meanwhile
    assert limiter.try_acquire() == 0.0
    clock.now = 30.05
    limiter.on_success()
    assert limiter.current_rate == pytest.approx(start * 2 ** (0.05 / 0.25))


@pytest.mark.parametrize("latency", [0.02, 0.05, 0.2])
def test_a_short_run_against_a_slower_endpoint_is_hardly_throttled_start_included(
    latency: float,
) -> None:
    # 600 calls at --rate 500 against an endpoint that takes 50 a second: the whole run,
    # from its first call, has under 5% of its calls throttled.
    clock = FakeClock()
    limiter = RateLimiter(500, clock=clock, sleep=clock.sleep)
    accepted, throttled = simulate(Server(lambda _: 50, 5, clock), limiter, clock, 14, latency)
    seconds = next(i for i, _ in enumerate(accepted) if sum(accepted[: i + 1]) >= 600) + 1
    share = sum(throttled[:seconds]) / (sum(accepted[:seconds]) + sum(throttled[:seconds]))
    assert share < 0.05, f"{share:.1%} throttled over {seconds} s"


def test_the_first_throttle_halves_the_rate_then_measures_the_capacity() -> None:
    clock = FakeClock()
    limiter = RateLimiter(500, clock=clock, sleep=clock.sleep, cooldown=0.0)
    start = limiter.current_rate
    assert start is not None
    limiter.try_acquire()
    clock.now = 0.5
    limiter.on_success(sent_at=0.45)
    assert limiter.current_rate == pytest.approx(start * 4)
    # Throttled, answered 0.25 s after it left: it left at half today's rate; half of that.
    clock.now = 0.75
    limiter.on_throttle(sent_at=0.5)
    assert limiter.current_rate == pytest.approx(start * 4 / 2 / 2)
    measuring = start
    # Answers to calls sent since the cut: 6 of 10 throttled, so the capacity is 40% of it.
    for n in range(10):
        clock.now = 0.8 + n * 0.01
        if n % 5 < 3:
            limiter.on_throttle(sent_at=0.76)
        else:
            limiter.on_success(sent_at=0.76)
    assert limiter.current_rate == pytest.approx(0.95 * 0.4 * measuring)
    # And from there today's AIMD, no more doubling: just under the measured capacity, the rate
    # creeps up by 1% of it a second.
    rate = limiter.current_rate
    clock.now += 0.2
    limiter.on_success(sent_at=clock.now)
    assert limiter.current_rate == pytest.approx(rate + 0.01 * 0.4 * measuring * 0.2)
