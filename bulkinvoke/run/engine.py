"""The submit-and-collect loop of one run.

One thread (the caller's) owns the ledger and every piece of run state; calls run on a pool of
``concurrency`` threads and sweeps of S3 on one more, and both hand their results back through a
queue. So the ledger has a single writer and no lock, and the order of the ledger is the order in
which this thread learned things. Only the writing of its batches to disk happens on a thread of
its own, so that sending goes on while the disk syncs.

Durability rules, in the spirit of an idempotency record:

* an attempt's ``submitting`` event is durable before its call is sent: intents are written for
  a chunk of attempts ahead of the calls, so one fsync covers many calls, and the next chunk's
  are written while this one's calls go out;
* a call's result is recorded, and counted, only when the thread applies it; results are flushed
  within ``flush_interval`` seconds, which bounds what a kill -9 can forget.

On resume, an attempt left ``submitting`` is in doubt: if its deterministic output location
already holds an object it is finished, else it is sent again with the same inference ID.
"""

from __future__ import annotations

import itertools
import queue
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum

from bulkinvoke.calls.invoker import Call, CallResult, Invoker
from bulkinvoke.calls.limiter import RateLimiter
from bulkinvoke.calls.retry import ErrorClass, ErrorKind, classify
from bulkinvoke.events import NoticeLevel, Progress, Subscribers
from bulkinvoke.ledger.background import BackgroundWriter
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.redaction import redact
from bulkinvoke.results.collector import Collector, Finding, SweepSchedule, Watch
from bulkinvoke.results.notifications import (
    NotificationListener,
    NotificationQueue,
    Received,
    ResultNotice,
)
from bulkinvoke.states import UNSUCCESSFUL_STATES, State


class Outcome(Enum):
    COMPLETE = "complete"  # every item reached a final state
    ACCEPTED = "accepted"  # --no-wait: every item was sent; results still to come
    INCOMPLETE = "incomplete"  # --timeout ran out first
    STOPPED = "stopped"  # a systemic error or the failure threshold


@dataclass(frozen=True)
class EngineSettings:
    concurrency: int = 16
    max_in_flight: int | None = None
    wait: bool = True
    deadline: float | None = None  # time.monotonic() value at which to give up waiting
    max_failures: int | None = None
    # Without wait: look for results once before returning (what `collect` does).
    sweep_once: bool = False
    flush_interval: float = 0.1
    progress_interval: float = 0.5


@dataclass(frozen=True)
class EngineResult:
    outcome: Outcome
    counts: dict[State, int]
    stop_reason: str | None = None
    submitted: int = 0
    s3_requests: int = 0
    # Results found that were written before their calls: an earlier run's, at the same
    # deterministic locations.
    earlier_results: int = 0


@dataclass(frozen=True, slots=True)
class _Sweep:
    findings: list[Finding]
    requests: int
    # Why no sweep can succeed until someone acts (expired credentials, access denied), if so.
    stop: str | None = None


@dataclass(frozen=True, slots=True)
class _NotSent:
    """A call still waiting in the pool's queue when the run began to stop: it stays unsent,
    its attempt in doubt like that of any other call whose intent is written."""

    call: Call


@dataclass(frozen=True, slots=True)
class _StopRequest:
    """Another thread's reason to stop the run (the S3 mirror's lease was taken over)."""

    reason: str


# What the engine thread hears from calls, sweeps, notifications and other threads.
_Message = CallResult | _Sweep | Received | _NotSent | _StopRequest


def _sweep_problem(error: Exception) -> tuple[str, bool]:
    """One line about a failed sweep, and whether no sweep can succeed until someone acts.
    botocore's errors go through ``classify``: their raw text may quote the refused request."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not isinstance(error, ClientError | BotoCoreError):
        return f"{type(error).__name__}: {error}", False
    problem = classify(error)
    return problem.describe(), problem.kind is ErrorKind.SYSTEMIC


_EARLY_NOTICES_KEPT = 10_000
_MAX_GATHER_S = 0.01


class Engine:
    def __init__(
        self,
        ledger: Ledger,
        invoker: Invoker,
        collector: Collector,
        limiter: RateLimiter,
        settings: EngineSettings,
        *,
        work: list[Call],
        in_doubt: set[tuple[int, int]],
        watches: list[Watch],
        counts: dict[State, int],
        expected_result_by: Callable[[Call, float], float],
        notifications: NotificationQueue | None = None,
        subscribers: Subscribers | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._invoker = invoker
        self._collector = collector
        self._limiter = limiter
        self._settings = settings
        self._work: deque[Call] = deque(work)
        self._ready: deque[Call] = deque()
        self._in_doubt = in_doubt
        self._watches: dict[tuple[int, int], Watch] = {(w.row, w.attempt): w for w in watches}
        self._watched_ids = {w.inference_id: (w.row, w.attempt) for w in watches}
        self._results: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._listener = (
            NotificationListener(notifications, self._results.put, self._warn)
            if notifications is not None
            else None
        )
        self._finished_ids: set[str] = set()
        self._early_notices: dict[str, tuple[ResultNotice, list[str]]] = {}
        self._counts: Counter[State] = Counter(counts)
        self._total = sum(counts.values())
        self._expected_result_by = expected_result_by
        self._subscribers = subscribers or Subscribers()
        self._clock = clock
        self._monotonic = monotonic
        self._calls_in_progress = 0
        self._sweeping = False
        self._sweeps_done = 0
        self._schedule = SweepSchedule(clock=monotonic)
        self._stop_reason: str | None = None
        self._timed_out = False  # the stop is --timeout's: incomplete, not stopped
        self._earlier_results = 0
        self._submitted = 0
        self._failures_in_a_row = 0
        self._failure_streak_limit = max(2 * settings.concurrency, 20)
        self._retries = 0
        self._throttles = 0
        self._started = monotonic()
        self._last_progress = 0.0
        self._writer = BackgroundWriter(
            ledger,
            flush_interval=settings.flush_interval,
            on_durable=self._listener.recorded if self._listener is not None else None,
            warn=self._warn,
            monotonic=monotonic,
        )
        # Attempts at the head of the work whose intents are recorded, and whether a write that
        # includes them has started: the next periodic write usually carries them.
        self._ahead = 0
        self._ahead_in_write = False
        self._chunk = max(2 * settings.concurrency, 32)
        if limiter.max_rate is not None:
            self._chunk = min(self._chunk, max(int(limiter.max_rate / 4), 8))
        self._chunk = min(self._chunk, 1000)

    def run(self) -> EngineResult:
        calls = ThreadPoolExecutor(self._settings.concurrency, thread_name_prefix="invoke")
        sweeps = ThreadPoolExecutor(1, thread_name_prefix="collect")
        if self._listener is not None:
            self._listener.start()
        try:
            outcome = self._loop(calls, sweeps)
        except BaseException:
            self._stop_reason = self._stop_reason or "interrupted"
            raise
        finally:
            # Also on Ctrl-C: let the calls already sent finish, so their results are recorded
            # rather than left in doubt.
            self._drain_calls()
            calls.shutdown(wait=False, cancel_futures=True)
            sweeps.shutdown(wait=False, cancel_futures=True)
            self._writer.close()
            if self._listener is not None:
                self._listener.stop(self._finished_ids)
            self._publish_progress(force=True)
        finished_normally = outcome in (Outcome.COMPLETE, Outcome.ACCEPTED)
        return EngineResult(
            outcome,
            dict(self._counts),
            stop_reason=None if finished_normally else self._stop_reason,
            submitted=self._submitted,
            s3_requests=self._collector.requests.total,
            earlier_results=self._earlier_results,
        )

    def request_stop(self, reason: str) -> None:
        """Stop the run as soon as the calls in progress are done (from any thread)."""
        self._results.put(_StopRequest(reason))

    def _loop(self, calls: ThreadPoolExecutor, sweeps: ThreadPoolExecutor) -> Outcome:
        while True:
            wake_in = self._dispatch(calls)
            if self._needs_results():
                if self._held_back_by_max_in_flight():
                    self._schedule.hurry()
                if not self._sweeping and self._schedule.due():
                    self._start_sweep(sweeps)
                wake_in = min(wake_in, self._schedule.seconds_until_due())
            self._apply_results(timeout=min(max(wake_in, 0.001), 0.1))
            self._flush_if_due()
            self._publish_progress()
            outcome = self._finished()
            if outcome is not None:
                return outcome

    def _finished(self) -> Outcome | None:
        if self._stop_reason is not None:
            if self._calls_in_progress:
                return None
            return Outcome.INCOMPLETE if self._timed_out else Outcome.STOPPED
        if self._work or self._ready or self._calls_in_progress:
            if not self._deadline_passed():
                return None
            self._stop_reason = "timed out before every item was sent"
            self._timed_out = True
            return None if self._calls_in_progress else Outcome.INCOMPLETE
        if not self._watches:
            return Outcome.COMPLETE
        if not self._settings.wait:
            if self._settings.sweep_once and self._sweeps_done == 0:
                return None
            return Outcome.ACCEPTED
        if self._deadline_passed():
            self._stop_reason = "timed out waiting for results"
            return Outcome.INCOMPLETE
        return None

    def _deadline_passed(self) -> bool:
        deadline = self._settings.deadline
        return deadline is not None and self._monotonic() >= deadline

    def _needs_results(self) -> bool:
        if not self._watches:
            return False
        if self._settings.wait or (self._settings.sweep_once and self._sweeps_done == 0):
            return True
        cap = self._settings.max_in_flight
        return cap is not None and len(self._watches) >= cap // 2

    # -- submitting ------------------------------------------------------------------------

    def _dispatch(self, calls: ThreadPoolExecutor) -> float:
        """Send what the limits allow; return how long until the rate limiter allows more."""
        while self._may_send_more():
            if not self._ready and not self._reserve():
                break
            wait = self._limiter.try_acquire()
            if wait > 0:
                return wait
            call = self._ready.popleft()
            self._calls_in_progress += 1
            calls.submit(self._send, call)
        return 0.1

    def _held_back_by_max_in_flight(self) -> bool:
        cap = self._settings.max_in_flight
        return (
            cap is not None
            and bool(self._work or self._ready)
            and self._calls_in_progress + len(self._watches) >= cap
        )

    def _may_send_more(self) -> bool:
        if self._stop_reason is not None or self._deadline_passed():
            return False
        if not (self._work or self._ready):
            return False
        if self._calls_in_progress >= self._dispatch_limit():
            return False
        cap = self._settings.max_in_flight
        return cap is None or self._calls_in_progress + len(self._watches) < cap

    def _dispatch_limit(self) -> int:
        # Unpaced, as many calls again wait in the pool's queue: a worker that finishes a call
        # takes the next at once rather than waiting for this thread, which can then let results
        # gather (see _gather). Paced calls are handed over only when due, so pacing holds.
        concurrency = self._settings.concurrency
        return concurrency if self._limiter.current_rate is not None else 2 * concurrency

    def _reserve(self) -> bool:
        """Make the next chunk of attempts ready to send once its intents are durable, and record
        the intents of the chunk after it, for a write to carry while this chunk goes out:
        sending waits for the disk only when it outruns it."""
        if not self._ahead:
            self._write_intents()
        if not self._ahead:
            return False
        if not self._ahead_in_write:
            self._writer.start()
        self._writer.wait()
        for _ in range(self._ahead):
            self._ready.append(self._work.popleft())
        self._ahead = 0
        self._write_intents()
        return True

    def _write_intents(self) -> None:
        now = self._clock()
        fresh = 0
        self._ahead = min(self._chunk_size(), len(self._work))
        for call in itertools.islice(self._work, self._ahead):
            self._ledger.record(
                Event(call.row, call.attempt, State.SUBMITTING, now, inference_id=call.inference_id)
            )
            # Work that was in doubt is counted as submitting already.
            fresh += (call.row, call.attempt) not in self._in_doubt
        self._move_counts(State.PENDING, State.SUBMITTING, fresh)
        self._ahead_in_write = False

    def _chunk_size(self) -> int:
        if self._limiter.max_rate is not None:
            return self._chunk
        # Without a rate limit, a quarter of a second of calls at the rate seen so far: at
        # hundreds of calls a second a write of 32 intents each time costs more CPU than a call.
        elapsed = self._monotonic() - self._started
        seen = self._submitted / elapsed if elapsed > 0 else 0.0
        return min(max(self._chunk, int(seen / 4)), 1000)

    def _send(self, call: Call) -> None:
        if self._stop_reason is not None:
            self._results.put(_NotSent(call))
            return
        try:
            result = self._invoker.invoke(call)
        except Exception as error:
            # A bug, not an answer (the invoker returns every answer as a value). Nothing reads
            # the pool's futures, so without a result here the run would wait for this call
            # forever: stop it instead, the attempt in doubt, for resume to settle.
            message = redact(f"unexpected error: {error}", call.options.custom_attributes)
            problem = ErrorClass(ErrorKind.SYSTEMIC, type(error).__name__, message)
            result = CallResult(call, State.SUBMITTING, self._clock(), stop=problem)
        self._results.put(result)

    # -- results ---------------------------------------------------------------------------

    def _apply_results(self, timeout: float) -> None:
        try:
            result = self._results.get(timeout=timeout)
        except queue.Empty:
            return
        self._gather()
        for _ in range(10_000):
            if isinstance(result, CallResult):
                self._apply_call(result)
            elif isinstance(result, _Sweep):
                self._apply_sweep(result)
            elif isinstance(result, _NotSent):
                self._calls_in_progress -= 1
            elif isinstance(result, _StopRequest):
                self._stop(result.reason, announce=False)  # its sender has said why
            else:
                self._apply_notifications(result)
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return

    def _gather(self) -> None:
        """While calls wait in the pool's queue the workers need nothing from this thread: let
        results gather for up to half the time those calls take, so that one wakeup of this
        thread applies many results rather than each its own (a wakeup costs CPU that a GIL
        shared with the workers turns into a slower run)."""
        queued = self._calls_in_progress - self._settings.concurrency
        elapsed = self._monotonic() - self._started
        if queued <= 0 or not self._submitted or elapsed <= 0:
            return
        time.sleep(min(queued * elapsed / self._submitted / 2, _MAX_GATHER_S))

    def _apply_call(self, result: CallResult) -> None:
        self._calls_in_progress -= 1
        self._retries += result.retries
        self._throttles += result.throttles
        call = result.call
        if result.stop is not None:
            self._stop(result.stop.describe())
            return
        accepted = result.state is State.SUBMITTED
        event = Event(
            call.row,
            call.attempt,
            result.state,
            result.at,
            submitted_at=result.at if accepted else None,
            output_location=result.output_location,
            failure_location=result.failure_location,
            error=result.error,
            retries=result.retries,
            throttles=result.throttles,
        )
        if accepted:
            self._submitted += 1
            self._watched_ids[call.inference_id] = (call.row, call.attempt)
            self._watches[(call.row, call.attempt)] = Watch(
                call.row,
                call.attempt,
                call.inference_id,
                result.output_location,
                result.failure_location,
                result.at,
                self._expected_result_by(call, result.at),
                call.options.custom_attributes,
            )
        self._ledger.record(event)
        self._move_counts(State.SUBMITTING, result.state)
        early = self._early_notices.pop(call.inference_id, None)
        if early is not None and result.state is State.SUBMITTED:
            self._apply_notice((call.row, call.attempt), *early)
        self._check_endpoint_health(result)
        if result.state in UNSUCCESSFUL_STATES:
            self._check_failure_threshold()

    def _check_endpoint_health(self, result: CallResult) -> None:
        # A dead network or a wrong region makes every call exhaust its retries: after a long
        # enough streak, stop (resumably) rather than mark a million items failed.
        if result.state is not State.FAILED:
            self._failures_in_a_row = 0
            return
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= self._failure_streak_limit:
            self._stop(
                f"{self._failures_in_a_row} calls in a row failed after every retry "
                f"(last: {result.error})"
            )

    def _apply_sweep(self, sweep: _Sweep) -> None:
        self._sweeping = False
        self._sweeps_done += 1
        if sweep.stop is not None:
            # Else the run would sweep, fail and wait for ever: stop it, resumably.
            self._stop(sweep.stop)
        found = 0
        earlier = sum(finding.written_before_call for finding in sweep.findings)
        if earlier and not self._earlier_results:
            self._warn(
                "results found were written before their calls were made: they are an earlier "
                "run's, at the same deterministic locations (same manifest, endpoint and "
                "--id-namespace), and are taken as this run's (counted in the summary). For "
                "fresh results, start a run with another --id-namespace"
            )
        self._earlier_results += earlier
        for finding in sweep.findings:
            if self._finish(
                (finding.row, finding.attempt),
                finding.state,
                completed_at=finding.completed_at,
                output_bytes=finding.output_bytes,
                error=finding.error,
            ):
                found += finding.state is not State.EXPIRED
        self._schedule.swept(found, sweep.requests)

    def _apply_notifications(self, received: Received) -> None:
        for notice in received.notices:
            receipts = received.receipts[notice.inference_id]
            if notice.inference_id in self._finished_ids:
                self._writer.acknowledge_when_durable(receipts)
                continue
            key = self._watched_ids.get(notice.inference_id)
            if key is not None:
                self._apply_notice(key, notice, receipts)
            elif len(self._early_notices) < _EARLY_NOTICES_KEPT:
                # Another run's, or a result that came before its call's answer did: kept
                # until that answer arrives; what is not kept, the queue delivers again.
                self._early_notices[notice.inference_id] = (notice, receipts)

    def _apply_notice(
        self, key: tuple[int, int], notice: ResultNotice, receipts: list[str]
    ) -> None:
        self._finish(
            key,
            notice.state,
            completed_at=notice.completed_at or self._clock(),
            output_location=notice.output_location,
            failure_location=notice.failure_location,
            error=notice.error,
        )
        self._writer.acknowledge_when_durable(receipts)

    def _finish(
        self,
        key: tuple[int, int],
        state: State,
        *,
        completed_at: float,
        output_bytes: int | None = None,
        error: str | None = None,
        output_location: str | None = None,
        failure_location: str | None = None,
    ) -> bool:
        """Record an awaited attempt's result; False if it was not awaited (already known)."""
        watch = self._watches.pop(key, None)
        if watch is None:
            return False
        self._watched_ids.pop(watch.inference_id, None)
        self._finished_ids.add(watch.inference_id)
        self._ledger.record(
            Event(
                key[0],
                key[1],
                state,
                self._clock(),
                completed_at=completed_at,
                output_bytes=output_bytes,
                error=None if error is None else redact(error, watch.custom_attributes),
                output_location=output_location,
                failure_location=failure_location,
            )
        )
        self._move_counts(State.SUBMITTED, state)
        if state in UNSUCCESSFUL_STATES:
            self._check_failure_threshold()
        return True

    def _start_sweep(self, sweeps: ThreadPoolExecutor) -> None:
        self._sweeping = True
        snapshot = list(self._watches.values())

        def sweep() -> None:
            before = self._collector.requests.total
            findings: list[Finding] = []
            stop = None
            try:
                findings = self._collector.sweep(snapshot)
            except Exception as error:
                problem, systemic = _sweep_problem(error)
                if systemic:
                    stop = f"collecting results: {problem}"
                else:
                    self._warn(f"collecting results: {problem}")
            finally:
                # The loop waits for this result before it sweeps again: it must always arrive.
                self._results.put(_Sweep(findings, self._collector.requests.total - before, stop))

        sweeps.submit(sweep)

    def _stop(self, reason: str, *, announce: bool = True) -> None:
        """Send nothing more: the run ends stopped (exit 4) once the calls in flight are done.
        The first reason stands, but one that comes after --timeout ran out replaces it: it is
        what the user must act on."""
        if self._stop_reason is not None and not self._timed_out:
            return
        self._stop_reason = reason
        self._timed_out = False
        if announce:
            self._subscribers.notice(NoticeLevel.ERROR, f"stopping: {reason}")

    def _warn(self, message: str) -> None:
        self._subscribers.notice(NoticeLevel.WARNING, message)

    def _check_failure_threshold(self) -> None:
        limit = self._settings.max_failures
        if limit is None:
            return
        failures = sum(self._counts[state] for state in UNSUCCESSFUL_STATES)
        if failures > limit:
            self._stop(f"{failures} items failed, more than --max-failures allows")

    def _drain_calls(self) -> None:
        deadline = self._monotonic() + 30
        while self._calls_in_progress and self._monotonic() < deadline:
            try:
                result = self._results.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(result, CallResult):
                self._apply_call(result)
            elif isinstance(result, _NotSent):
                self._calls_in_progress -= 1

    # -- bookkeeping -----------------------------------------------------------------------

    def _move_counts(self, old: State, new: State, n: int = 1) -> None:
        self._counts[old] -= n
        self._counts[new] += n

    def _flush_if_due(self) -> None:
        if self._writer.flush_if_due():
            self._ahead_in_write = True

    def _publish_progress(self, *, force: bool = False) -> None:
        now = self._monotonic()
        if not force and now - self._last_progress < self._settings.progress_interval:
            return
        self._last_progress = now
        elapsed = now - self._started
        # Not before a second has passed: the first calls alone, a few ms in, are no rate (and
        # would forecast the run's end from one call).
        rate = self._submitted / elapsed if elapsed >= 1.0 else None
        left = len(self._work) + len(self._ready)
        self._subscribers.progress(
            Progress(
                total=self._total,
                counts={state: n for state, n in self._counts.items() if n},
                calls_in_progress=min(self._calls_in_progress, self._settings.concurrency),
                awaiting_results=len(self._watches),
                submit_rate=rate,
                rate_limit=self._limiter.current_rate,
                throttles=self._throttles,
                retries=self._retries,
                elapsed_s=elapsed,
                eta_s=left / rate if rate and left else None,
            )
        )
