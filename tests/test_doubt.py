"""When an in-doubt attempt watched with ``--in-doubt wait`` is sent again: pure policy, no I/O."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from bulkinvoke.calls.invoker import Call
from bulkinvoke.request_options import RequestOptions
from bulkinvoke.results.collector import Watch
from bulkinvoke.run.doubt import MIN_LATENCY_S, SEND_MARGIN_S, Doubt

SINCE = 1000.0


def _doubt(expires_at: float = math.inf) -> Doubt:
    call = Call(1, 1, "bi-x", "s3://in/x", RequestOptions())
    watch = Watch(1, 1, "bi-x", "s3://out/bi-x.out", None, SINCE, math.inf)
    return Doubt(call, watch, SINCE, expires_at)


def test_nothing_is_overdue_while_no_later_call_has_a_result() -> None:
    doubt = _doubt()
    # Hours later, but the endpoint has returned nothing accepted after it: it may be queued.
    assert not doubt.overdue(SINCE + 3600, horizon=SINCE, longest_latency=2)


def test_overdue_once_later_calls_have_results_and_twice_the_latency_has_passed() -> None:
    doubt = _doubt()
    horizon = SINCE + 0.1
    due = SINCE + SEND_MARGIN_S + 2 * 3.0
    assert not doubt.overdue(due - 0.01, horizon, longest_latency=3.0)
    assert doubt.overdue(due, horizon, longest_latency=3.0)


def test_with_no_latency_seen_the_least_is_assumed() -> None:
    horizon = SINCE + 1
    assert not _doubt().overdue(SINCE + SEND_MARGIN_S + 1.9 * MIN_LATENCY_S, horizon, 0.0)
    assert _doubt().overdue(SINCE + SEND_MARGIN_S + 2 * MIN_LATENCY_S, horizon, 0.0)


def test_expiry_makes_it_overdue_whatever_the_queue_says() -> None:
    assert _doubt(expires_at=SINCE + 60).overdue(SINCE + 60, horizon=0.0, longest_latency=0.0)


@given(
    now=st.floats(SINCE, SINCE + 1e5),
    horizon=st.floats(0, SINCE + 1e5),
    latency=st.floats(0, 1e4),
    later=st.floats(0, 1e4),
)
def test_overdue_stays_overdue(now: float, horizon: float, latency: float, later: float) -> None:
    # As time passes and the horizon moves on, an overdue attempt never becomes due again.
    doubt = _doubt()
    if doubt.overdue(now, horizon, latency):
        assert doubt.overdue(now + later, horizon + later, latency)
