"""Client-side rate limit: calls paced on a schedule, at a rate that adapts to throttling (AIMD).

The bucket holds one token at most, so calls go out ``1 / rate`` apart: a one-second window holds
at most ``rate`` calls, the first second and the one after an idle spell included (one more at
worst when a caller turns up late and the next one on time). ``acquire`` reserves the next slot of
a schedule kept here and computed from the previous slot, not from "now", so sleep overshoot and
the time spent making a call do not add up to drift: the long-run rate is the configured one.

The rate starts below ``max_rate`` and doubles every ``SLOW_START_DOUBLING_S`` of successes (a
slow start, as TCP's) until it reaches ``max_rate`` or the first throttle: an endpoint that
takes less than ``--rate`` is not flooded at the start of a run, and one that takes more is
paced at ``--rate`` within ``SLOW_START_S`` (the start is ``max_rate / 2**(SLOW_START_S /
SLOW_START_DOUBLING_S)``, but at least ``SLOW_START_FROM`` calls a second). The first throttle
halves the rate the throttled call left at, and the answers to the next calls measure the
endpoint's capacity (see ``MEASURE_S``). From then on, a throttle cuts the rate by
``decrease_factor``, or by the gentler
``NEAR_DECREASE`` when it is within ``NEAR`` of the rate that last throttled (the steady sawtooth
under a known capacity, rather than a fresh overload), and further throttles are ignored for
``cooldown`` seconds: they answer calls sent before the cut, and a cut for each would collapse the
rate. Throttle-free successes raise the rate by ``increase_per_second`` per second, except within
``NEAR`` of the rate that last throttled, where it creeps up by ``PROBE`` of that rate per second:
the climb back is quick and the probe past the server's capacity slow, so the rate spends its time
just under that capacity. ``cooldown`` should be at least the round trip of one call.

Against a server with capacity 50/s and ``max_rate=500``, the simulation in tests/test_limiter.py
settles within 5 s at 47-50 accepted calls per second, with under 5% of all calls throttled, the
start included.

Without ``max_rate`` calls are not paced at all until the first throttle: the limiter then starts
pacing at the rate calls were going out in the second before, cut as above, and adapts from there
with no ceiling. An endpoint that never throttles is never slowed down.

The clock and the sleep are injected, as in s3transfer, so the limiter is tested without sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

NEAR = 0.1
NEAR_DECREASE = 0.85
PROBE = 0.01
SLOW_START_DOUBLING_S = 0.25
SLOW_START_S = 1.25
SLOW_START_FROM = 10.0
# Leaving slow start: the answers to calls sent at half the rate that throttled, over at least
# this long and this many, measure the endpoint's capacity. A throttled share f above
# MEASURED_OVER at rate r means a capacity of about r * (1 - f), and the rate goes just under it;
# a smaller share is the throttle's own aftermath, and the rate stays to grow back.
MEASURE_S = 0.1
MEASURE_ANSWERS = 10
MEASURED_OVER = 0.2
MEASURED_FRACTION = 0.95
# Successes after a pause say nothing about the pause: growth counts at most this much of it.
_MAX_GROWTH_SPAN = 1.0


class RateLimiter:
    """Paces calls at ``current_rate`` per second; ``max_rate=None`` means no limit at all.

    Thread-safe: ``acquire``, ``try_acquire`` and the ``on_*`` feedback may be called from any
    thread; the lock is never held while sleeping. Without feedback the rate stays at ``max_rate``.
    """

    def __init__(
        self,
        max_rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        decrease_factor: float = 0.7,
        cooldown: float = 0.5,
        min_rate: float | None = None,
        increase_per_second: float | None = None,
        slow_start: bool = True,
    ) -> None:
        if max_rate is not None and not (max_rate > 0 and math.isfinite(max_rate)):
            raise ValueError(f"the rate must be a positive number of calls per second: {max_rate}")
        if not 0 < decrease_factor < 1:
            raise ValueError(f"decrease_factor must be between 0 and 1: {decrease_factor}")
        if cooldown < 0:
            raise ValueError(f"cooldown must not be negative: {cooldown}")
        top = max_rate or 1.0
        floor = max(1.0, 0.01 * top) if min_rate is None else min_rate
        increase = max(1.0, 0.05 * top) if increase_per_second is None else increase_per_second
        if not (floor > 0 and increase > 0):
            raise ValueError("min_rate and increase_per_second must be positive")
        self._limited = max_rate is not None
        self._max = top
        self._min = min(top, floor)
        self._increase = increase
        self._decrease = decrease_factor
        self._cooldown = cooldown
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        start = max(top / 2 ** (SLOW_START_S / SLOW_START_DOUBLING_S), SLOW_START_FROM)
        self._rate = min(top, start) if slow_start and self._limited else top
        self._slow_start = self._rate < top
        # Leaving slow start: since when answers are counted, and (successes, throttles).
        self._measuring_since: float | None = None
        self._measured = [0, 0]
        self._next_slot: float | None = None
        self._last_throttled_rate: float | None = None
        self._calm_at = -math.inf
        self._grown_at = clock()
        # While unlimited: when the calls of the last second went out, to know the rate to
        # start pacing at if the endpoint throttles.
        self._recent: deque[float] = deque()

    @property
    def max_rate(self) -> float | None:
        return self._max if self._limited and math.isfinite(self._max) else None

    @property
    def current_rate(self) -> float | None:
        return self._rate if self._limited else None

    def acquire(self) -> None:
        """Block until a call may be made; the slot is reserved before sleeping."""
        if not self._limited:
            self._note_unpaced_call()
            return
        with self._lock:
            wait = self._reserve(self._clock(), wait_allowed=True)
        if wait > 0:
            self._sleep(wait)

    def try_acquire(self) -> float:
        """Take a slot and return 0.0 if one is free now, else the seconds until one is."""
        if not self._limited:
            self._note_unpaced_call()
            return 0.0
        with self._lock:
            return self._reserve(self._clock(), wait_allowed=False)

    def _note_unpaced_call(self) -> None:
        with self._lock:
            now = self._clock()
            self._recent.append(now)
            while self._recent and self._recent[0] < now - 1.0:
                self._recent.popleft()

    def _start_pacing(self) -> None:
        # Calls per second over the last second, or over the time since the first call when that
        # is shorter (a throttle in the first moments of a run), but never less than 0.1 s of it.
        span = min(max(self._clock() - self._recent[0], 0.1), 1.0) if self._recent else 1.0
        observed = max(len(self._recent) / span, 1.0)
        self._recent.clear()
        self._limited = True
        self._max = math.inf
        self._rate = observed
        self._increase = max(1.0, 0.05 * observed)

    def on_throttle(self, sent_at: float | None = None) -> None:
        """A call was throttled; ``sent_at`` (on this limiter's clock), when it left."""
        with self._lock:
            if not self._limited:
                self._start_pacing()
            now = self._clock()
            if self._measuring_since is not None:
                self._measure(now, sent_at, throttled=True)
                return
            if now < self._calm_at:
                return
            if self._slow_start:
                self._leave_slow_start(now, sent_at)
                return
            factor = NEAR_DECREASE if self._near_last_throttle() else self._decrease
            self._last_throttled_rate = self._rate
            self._rate = max(self._min, self._rate * factor)
            self._calm_at = now + self._cooldown
            self._grown_at = self._calm_at

    def _leave_slow_start(self, now: float, sent_at: float | None) -> None:
        # The rate doubled while the answer was on its way: the call left at a lower rate, the
        # first known to be too much. A burst the endpoint allowed may have hidden its limit
        # for a while, so that rate can be far above it: halve it, then measure.
        if sent_at is not None:
            self._rate /= 2 ** (max(now - sent_at, 0.0) / SLOW_START_DOUBLING_S)
        self._slow_start = False
        self._last_throttled_rate = self._rate
        self._rate = max(self._min, self._rate / 2)
        self._measuring_since = now
        self._measured = [0, 0]

    def _measure(self, now: float, sent_at: float | None, *, throttled: bool) -> None:
        since = self._measuring_since
        assert since is not None
        if sent_at is None or sent_at >= since:
            self._measured[throttled] += 1
        successes, throttles = self._measured
        if now - since < MEASURE_S or successes + throttles < MEASURE_ANSWERS:
            return
        self._measuring_since = None
        if throttles > MEASURED_OVER * (successes + throttles):
            capacity = self._rate * successes / (successes + throttles)
            self._last_throttled_rate = capacity
            self._rate = max(self._min, capacity * MEASURED_FRACTION)
        self._calm_at = now + self._cooldown
        self._grown_at = self._calm_at

    def on_success(self, sent_at: float | None = None) -> None:
        """A call was accepted; ``sent_at`` (on this limiter's clock), when it left."""
        if not self._limited:
            return
        with self._lock:
            now = self._clock()
            if self._measuring_since is not None:
                self._measure(now, sent_at, throttled=False)
                return
            if now < self._calm_at:
                return
            span = min(now - self._grown_at, _MAX_GROWTH_SPAN)
            self._grown_at = now
            if span > 0:
                self._rate = min(self._max, self._grown(span))
                self._slow_start = self._slow_start and self._rate < self._max

    def _near_last_throttle(self) -> bool:
        last = self._last_throttled_rate
        return last is not None and (1 - NEAR) * last <= self._rate <= (1 + NEAR) * last

    def _grown(self, span: float) -> float:
        if self._slow_start:
            return self._rate * 2 ** (span / SLOW_START_DOUBLING_S)
        last = self._last_throttled_rate
        if last is None or self._rate > (1 + NEAR) * last:
            return self._rate + self._increase * span
        if self._near_last_throttle():
            return self._rate + min(self._increase, PROBE * last) * span
        # At low rates one success can stand for a long span: stop at the band, do not jump it.
        return min(self._rate + self._increase * span, (1 - NEAR) * last)

    def _reserve(self, now: float, *, wait_allowed: bool) -> float:
        interval = 1.0 / self._rate
        slot = self._next_slot
        # A caller up to one interval late keeps its place on the schedule (that is sleep
        # overshoot, and starting over would lose the time); a later one was idle and gets no
        # saved-up credit, which is what keeps bursts out.
        if slot is None or now > slot + interval:
            slot = now
        if self._next_slot is None:
            # Growth counts from the first call, not from when the run was being set up.
            self._grown_at = now
        wait = max(0.0, slot - now)
        if wait == 0.0 or wait_allowed:
            self._next_slot = slot + interval
        return wait
