"""The engine's loop with a fake invoker and collector, a real ledger in a temporary directory and
an injected clock: when it stops (failure streak, --max-failures, --timeout's deadline), that it
sends nothing after a stop, and that every state change it records is legal.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from bulkinvoke.calls.invoker import Call, CallResult
from bulkinvoke.calls.limiter import RateLimiter
from bulkinvoke.ledger.files import list_event_files
from bulkinvoke.ledger.schema import event_schema, read_event_files
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.request_options import RequestOptions
from bulkinvoke.results.collector import Finding, RequestCounter, Watch
from bulkinvoke.run.engine import Engine, EngineSettings
from bulkinvoke.run.outcome import Outcome
from bulkinvoke.run.stop import failure_streak_limit
from bulkinvoke.states import State, check_transition

ITEMS = 60


class FakeInvoker:
    """Answers each call with ``answer(call)``; counts the calls it was given."""

    def __init__(self, answer: Callable[[Call], State]) -> None:
        self._answer = answer
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def invoke(self, call: Call) -> CallResult:
        with self._lock:
            self.calls.append(call)
        state = self._answer(call)
        accepted = state is State.SUBMITTED
        return CallResult(
            call,
            state,
            1_767_225_600.0,
            output_location=f"s3://out/{call.inference_id}.out" if accepted else None,
            error=None if accepted else f"{state.value} by the fake",
        )


class FakeCollector:
    """Every watched attempt has succeeded by the time it is looked for."""

    def __init__(self) -> None:
        self.requests = RequestCounter()

    def sweep(self, watches: list[Watch]) -> list[Finding]:
        self.requests.add("ListObjectsV2")
        return [Finding(w.row, w.attempt, State.SUCCEEDED, w.submitted_at + 1) for w in watches]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    plan = pa.table(
        {
            "row": pa.array(range(1, ITEMS + 1), pa.int64()),
            "line": pa.array(range(2, ITEMS + 2), pa.int64()),
            "input_location": [f"s3://in/{n}" for n in range(ITEMS)],
        }
    )
    with Ledger.create(tmp_path / "run", {"options": {}}, plan) as created:
        yield created


def _calls() -> list[Call]:
    return [Call(n, 1, f"id-{n}", f"s3://in/{n}", RequestOptions()) for n in range(1, ITEMS + 1)]


def _engine(
    ledger: Ledger,
    invoker: FakeInvoker,
    *,
    monotonic: Callable[[], float] | None = None,
    **settings: Any,
) -> Engine:
    options: dict[str, Any] = {"concurrency": 2, "flush_interval": 0.01, **settings}
    return Engine(
        ledger,
        invoker,  # type: ignore[arg-type]
        FakeCollector(),  # type: ignore[arg-type]
        RateLimiter(None),
        EngineSettings(**options),
        work=_calls(),
        in_doubt=set(),
        watches=[],
        counts={State.PENDING: ITEMS},
        expected_result_by=lambda call, at: math.inf,
        **({"monotonic": monotonic} if monotonic is not None else {}),
    )


def _history_is_legal(ledger: Ledger) -> None:
    """Replay every recorded event of every attempt: each move is in the state table."""
    ledger.flush()
    files = list_event_files(ledger.run_dir / "events")
    table = pa.concat_tables(read_event_files(files, None)) if files.batches or files.compaction \
        else event_schema().empty_table()  # fmt: skip
    last: dict[tuple[int, int], State] = {}
    for row, attempt, state in zip(
        table["row"].to_pylist(),
        table["attempt"].to_pylist(),
        table["state"].to_pylist(),
        strict=True,
    ):
        check_transition(last.get((row, attempt), State.PENDING), State(state))
        last[(row, attempt)] = State(state)


def test_a_run_where_everything_works_completes_and_every_move_is_legal(ledger: Ledger) -> None:
    invoker = FakeInvoker(lambda call: State.SUBMITTED)
    result = _engine(ledger, invoker).run()
    assert result.outcome is Outcome.COMPLETE
    assert result.counts[State.SUCCEEDED] == ITEMS
    assert len(invoker.calls) == ITEMS
    _history_is_legal(ledger)


def test_a_streak_of_failed_calls_stops_the_run(ledger: Ledger) -> None:
    invoker = FakeInvoker(lambda call: State.FAILED)
    result = _engine(ledger, invoker).run()
    limit = failure_streak_limit(2)
    assert result.outcome is Outcome.STOPPED
    assert result.stop_reason is not None
    assert result.stop_reason.startswith(f"{limit} calls in a row failed after every retry")
    # Nothing is handed out once the run stops: only the calls already in progress finish.
    assert limit <= len(invoker.calls) <= limit + 2 * 2
    _history_is_legal(ledger)


def test_a_success_breaks_the_streak(ledger: Ledger) -> None:
    invoker = FakeInvoker(lambda call: State.SUBMITTED if call.row % 10 == 0 else State.FAILED)
    result = _engine(ledger, invoker).run()
    assert result.outcome is Outcome.COMPLETE
    assert result.counts[State.FAILED] == ITEMS - ITEMS // 10


def test_max_failures_stops_the_run_past_the_threshold(ledger: Ledger) -> None:
    invoker = FakeInvoker(lambda call: State.REJECTED if call.row % 3 == 0 else State.SUBMITTED)
    result = _engine(ledger, invoker, max_failures=5).run()
    assert result.outcome is Outcome.STOPPED
    assert result.stop_reason == "6 items failed, more than --max-failures allows"
    assert result.counts[State.REJECTED] >= 6
    _history_is_legal(ledger)


def test_the_deadline_ends_the_run_incomplete_on_the_injected_clock(ledger: Ledger) -> None:
    # Each reading of the clock is a second later: the deadline, 30 s away, passes while the
    # calls go out, with no waiting in this test.
    ticks = itertools.count()
    invoker = FakeInvoker(lambda call: State.SUBMITTED)
    engine = _engine(ledger, invoker, monotonic=lambda: float(next(ticks)), deadline=30.0)
    result = engine.run()
    assert result.outcome is Outcome.INCOMPLETE
    assert result.stop_reason in (
        "timed out before every item was sent",
        "timed out waiting for results",
    )
    assert len(invoker.calls) < ITEMS
    _history_is_legal(ledger)


def test_an_illegal_move_fails_loudly() -> None:
    with pytest.raises(ValueError, match="cannot go from succeeded to submitted"):
        check_transition(State.SUCCEEDED, State.SUBMITTED)


def _latest_states(ledger: Ledger) -> dict[int, str]:
    ledger.flush()
    latest = ledger.latest()
    return dict(zip(latest["row"].to_pylist(), latest["state"].to_pylist(), strict=True))


def test_intents_of_calls_that_never_left_are_taken_back_when_the_run_stops(
    ledger: Ledger,
) -> None:
    invoker = FakeInvoker(lambda call: State.FAILED)
    result = _engine(ledger, invoker).run()
    assert result.outcome is Outcome.STOPPED
    sent = {call.row for call in invoker.calls}
    # Intents are written a chunk ahead: those never sent are pending again, not in doubt.
    assert result.counts.get(State.SUBMITTING, 0) == 0
    assert result.counts[State.PENDING] == ITEMS - len(sent)
    states = _latest_states(ledger)
    assert all(
        states.get(row, "pending") == "pending" for row in range(1, ITEMS + 1) if row not in sent
    )
    assert all(states[row] == "failed" for row in sent)
    _history_is_legal(ledger)


def test_attempts_in_doubt_from_before_stay_in_doubt_when_the_run_stops(ledger: Ledger) -> None:
    invoker = FakeInvoker(lambda call: State.FAILED)
    doubted = {(row, 1) for row in range(1, ITEMS + 1)}
    engine = Engine(
        ledger,
        invoker,  # type: ignore[arg-type]
        FakeCollector(),  # type: ignore[arg-type]
        RateLimiter(None),
        EngineSettings(concurrency=2, flush_interval=0.01),
        work=_calls(),
        in_doubt=doubted,
        watches=[],
        counts={State.SUBMITTING: ITEMS},
        expected_result_by=lambda call, at: math.inf,
    )
    result = engine.run()
    assert result.outcome is Outcome.STOPPED
    # An earlier session may have sent them: only an answer or a result settles them.
    assert result.counts[State.SUBMITTING] == ITEMS - len(invoker.calls)
    assert State.PENDING not in result.counts or result.counts[State.PENDING] == 0


def test_the_rate_shown_is_over_the_time_spent_sending() -> None:
    from bulkinvoke.run.recorder import Recorder

    recorder = Recorder(
        None,  # type: ignore[arg-type]  # progress() reads no ledger
        None,  # type: ignore[arg-type]
        counts={},
        watches=[],
        expected_result_by=lambda call, at: math.inf,
        stop_policy=None,  # type: ignore[arg-type]
        stop=lambda reason: None,
        warn=lambda message: None,
    )
    recorder.submitted = 100
    sending = recorder.progress(
        total=110, calls_in_progress=2, rate_limit=None, elapsed_s=10.0, left=10
    )
    assert sending.submit_rate == 10.0 and sending.eta_s == 1.0
    # Every call out, results awaited for another 30 s: the rate stays what sending achieved.
    waiting = recorder.progress(
        total=110, calls_in_progress=0, rate_limit=None, elapsed_s=40.0, left=0
    )
    assert waiting.submit_rate == 10.0 and waiting.eta_s is None


class _InterruptingDeque(deque[Call]):
    """The engine's ready queue, interrupted (as Ctrl-C would) at its ``n``-th append."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self._left = n

    def append(self, call: Call) -> None:
        self._left -= 1
        if self._left == 0:
            raise KeyboardInterrupt
        super().append(call)


@pytest.mark.parametrize("where", ["recording a chunk of intents", "moving a chunk to the slots"])
def test_an_interrupt_between_two_steps_leaves_counts_and_history_sound(
    ledger: Ledger, where: str
) -> None:
    invoker = FakeInvoker(lambda call: State.SUBMITTED)
    engine = _engine(ledger, invoker, wait=False)
    if where == "moving a chunk to the slots":
        engine._ready = _InterruptingDeque(35)
    else:
        record, recorded = ledger.record, itertools.count(1)

        def interrupted(event: Any) -> None:
            if event.state is State.SUBMITTING and next(recorded) == 40:
                raise KeyboardInterrupt
            record(event)

        ledger.record = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        engine.run()
    _history_is_legal(ledger)
    counts = engine._recorder.counts
    assert all(n >= 0 for n in counts.values()) and sum(counts.values()) == ITEMS
    sent = {call.row for call in invoker.calls}
    # An attempt is pending again only if its call never left; one caught mid-step may stay in
    # doubt (submitting), never the other way round.
    states = _latest_states(ledger)
    assert not any(states.get(row) == "pending" for row in sent)
