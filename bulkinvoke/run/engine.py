"""The submit-and-collect loop of one run.

One thread (the caller's) owns the run's state; calls run on a pool of ``concurrency`` threads
and sweeps of S3 on one more, and both hand their results back through a queue. Batches are
written on a thread of their own, so that sending goes on while the disk syncs. Durability
rules, in the spirit of an idempotency record:

* an attempt's ``submitting`` intent is durable before its call is sent (``intents``: one fsync
  covers a chunk of intents, written while the previous chunk's calls go out);
* a call slot records its call's answer itself and takes its next call only once the answer is
  in the journal (a group commit): a kill -9 forgets at most ``concurrency`` answers;
* results found later are recorded by this thread and flushed within ``flush_interval``.

A stopping run records ``pending`` again for the intents of calls that never left. An attempt
left ``submitting`` (its call may have gone out) is in doubt on resume: see ``run.in_doubt`` and
``run.doubt``.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bulkinvoke.calls.invoker import Call, CallResult, Invoker
from bulkinvoke.calls.limiter import RateLimiter
from bulkinvoke.calls.retry import ErrorClass, ErrorKind
from bulkinvoke.errors import LedgerWriteError
from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.ledger.background import BackgroundWriter
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.redaction import redact
from bulkinvoke.results.collector import Collector, SweepSchedule, Watch
from bulkinvoke.results.notifications import NotificationListener, NotificationQueue
from bulkinvoke.run.dispatch import DispatchPolicy
from bulkinvoke.run.doubt import Doubt
from bulkinvoke.run.intents import IntentWriter
from bulkinvoke.run.messages import Message, NotSent, StopRequest, Sweep, sweep
from bulkinvoke.run.outcome import EngineResult, Outcome
from bulkinvoke.run.recorder import Recorder, answer_event
from bulkinvoke.run.slots import DEFAULT_CONCURRENCY
from bulkinvoke.run.stop import Deadline, stop_policy
from bulkinvoke.states import State


@dataclass(frozen=True)
class EngineSettings:
    # Most calls in progress; with ``sized_for_rate`` a cap, the slots being sized from it.
    concurrency: int = 16
    # --rate without --concurrency: keep rate x latency calls in progress (see run.slots).
    sized_for_rate: float | None = None
    max_in_flight: int | None = None
    wait: bool = True
    deadline: float | None = None  # time.monotonic() value at which to give up waiting
    max_failures: int | None = None
    # Without wait: look for results once before returning (what `collect` does).
    sweep_once: bool = False
    flush_interval: float = 0.1
    progress_interval: float = 0.5


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
        doubts: list[Doubt] | None = None,
        results_horizon: float = 0.0,
        longest_latency: float = 0.0,
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
        # Calls whose intent is written that a slot was told not to send (the run was stopping).
        self._not_sent: list[Call] = []
        self._results: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._listener = (
            NotificationListener(notifications, self._results.put, self._warn)
            if notifications is not None
            else None
        )
        self._total = sum(counts.values())
        self._subscribers = subscribers or Subscribers()
        self._clock = clock
        self._monotonic = monotonic
        self._calls_in_progress = 0
        self._sweeping = False
        self._sweeps_done = 0
        self._schedule = SweepSchedule(clock=monotonic)
        self._stop_reason: str | None = None
        self._timed_out = False  # the stop is --timeout's: incomplete, not stopped
        self._deadline = Deadline(settings.deadline, monotonic)
        self._started = monotonic()
        self._last_progress = 0.0
        self._writer = BackgroundWriter(
            ledger,
            flush_interval=settings.flush_interval,
            on_durable=self._listener.recorded if self._listener is not None else None,
            warn=self._warn,
            monotonic=monotonic,
        )
        self._recorder = Recorder(
            ledger,
            self._writer,
            counts=counts,
            watches=watches,
            expected_result_by=expected_result_by,
            stop_policy=stop_policy(
                settings.max_failures,
                DEFAULT_CONCURRENCY if settings.sized_for_rate else settings.concurrency,
            ),
            stop=self._stop,
            warn=self._warn,
            doubts=doubts or (),
            results_horizon=results_horizon,
            longest_latency=longest_latency,
            clock=clock,
        )
        self._policy = DispatchPolicy(
            settings.concurrency, max_rate=limiter.max_rate, sized_for_rate=settings.sized_for_rate
        )
        self._intents = IntentWriter(
            ledger,
            self._writer,
            self._work,
            in_doubt=in_doubt,
            chunk_size=lambda: self._policy.chunk_size(self._recorder.submitted, self._elapsed()),
            on_recorded=lambda fresh: self._recorder.move(State.PENDING, State.SUBMITTING, fresh),
            clock=clock,
        )

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
            # rather than left in doubt, and take back the intents of calls that never left.
            self._drain_calls()
            withdrawn = self._intents.withdraw(self._not_sent)
            self._recorder.move(State.SUBMITTING, State.PENDING, withdrawn)
            calls.shutdown(wait=False, cancel_futures=True)
            sweeps.shutdown(wait=False, cancel_futures=True)
            self._writer.close()
            if self._listener is not None:
                self._listener.stop(self._recorder.finished_ids)
            self._publish_progress(force=True)
        finished_normally = outcome in (Outcome.COMPLETE, Outcome.ACCEPTED)
        return EngineResult(
            outcome,
            dict(self._recorder.counts),
            stop_reason=None if finished_normally else self._stop_reason,
            submitted=self._recorder.submitted,
            s3_requests=self._collector.requests.total,
            earlier_results=self._recorder.earlier_results,
            in_doubt_found=self._recorder.in_doubt_found,
            in_doubt_resent=self._recorder.in_doubt_resent,
        )

    def request_stop(self, reason: str) -> None:
        """Stop the run as soon as the calls in progress are done (from any thread)."""
        self._results.put(StopRequest(reason))

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
        sending = bool(self._work or self._ready or self._calls_in_progress)
        awaiting = self._settings.wait and self._recorder.awaiting > 0
        if self._stop_reason is None and (sending or awaiting) and self._deadline.passed():
            self._stop_reason = (
                "timed out before every item was sent"
                if sending
                else "timed out waiting for results"
            )
            self._timed_out = True
        if self._stop_reason is not None:
            if self._calls_in_progress:
                return None
            return Outcome.INCOMPLETE if self._timed_out else Outcome.STOPPED
        if sending or awaiting:
            return None
        if not self._recorder.awaiting:
            return Outcome.COMPLETE
        if self._settings.sweep_once and self._sweeps_done == 0:
            return None
        return Outcome.ACCEPTED

    def _needs_results(self) -> bool:
        if not self._recorder.awaiting:
            return False
        if self._settings.wait or (self._settings.sweep_once and self._sweeps_done == 0):
            return True
        cap = self._settings.max_in_flight
        return cap is not None and self._recorder.awaiting >= cap // 2

    # -- submitting ------------------------------------------------------------------------

    def _dispatch(self, calls: ThreadPoolExecutor) -> float:
        """Send what the limits allow; return how long until the rate limiter allows more."""
        while self._may_send_more():
            if not self._ready and not self._intents.reserve(self._ready):
                break
            wait = self._limiter.try_acquire()
            if wait > 0:
                return wait
            call = self._ready.popleft()
            self._intents.handed_out(call)
            self._calls_in_progress += 1
            calls.submit(self._send, call)
        return 0.1

    def _held_back_by_max_in_flight(self) -> bool:
        cap = self._settings.max_in_flight
        return (
            cap is not None
            and bool(self._work or self._ready)
            and self._calls_in_progress + self._recorder.awaiting >= cap
        )

    def _may_send_more(self) -> bool:
        if self._stop_reason is not None or self._deadline.passed():
            return False
        if not (self._work or self._ready):
            return False
        if self._calls_in_progress >= self._policy.limit(self._limiter.current_rate is not None):
            return False
        cap = self._settings.max_in_flight
        return cap is None or self._calls_in_progress + self._recorder.awaiting < cap

    def _send(self, call: Call) -> None:
        if self._stop_reason is not None:
            self._results.put(NotSent(call))
            return
        started = self._monotonic()
        try:
            result = self._invoker.invoke(call)
        except Exception as error:
            # A bug, not an answer (the invoker returns every answer as a value). Nothing reads
            # the pool's futures, so without a result here the run would wait for this call
            # forever: stop it instead, the attempt in doubt, for resume to settle.
            message = redact(f"unexpected error: {error}", call.options.custom_attributes)
            problem = ErrorClass(ErrorKind.SYSTEMIC, type(error).__name__, message)
            result = CallResult(call, State.SUBMITTING, self._clock(), stop=problem)
        if result.stop is None:
            # The slot takes its next call only once this answer is on disk: a crash then
            # forgets at most one answer per slot (group commit; see BackgroundWriter).
            try:
                self._writer.record_durably((answer_event(result),))
            except LedgerWriteError as error:
                problem = ErrorClass(ErrorKind.SYSTEMIC, type(error).__name__, str(error))
                result = CallResult(call, State.SUBMITTING, result.at, stop=problem)
        if self._policy.sizer is not None:
            self._policy.sizer.observe(self._monotonic() - started)
        self._results.put(result)

    # -- results ---------------------------------------------------------------------------

    def _apply_results(self, timeout: float) -> None:
        try:
            result = self._results.get(timeout=timeout)
        except queue.Empty:
            return
        pause = self._policy.gather_s(
            self._calls_in_progress, self._recorder.submitted, self._elapsed()
        )
        if pause > 0:
            time.sleep(pause)
        for _ in range(10_000):
            if isinstance(result, CallResult):
                self._apply_call(result)
            elif isinstance(result, Sweep):
                self._apply_sweep(result)
            elif isinstance(result, NotSent):
                self._calls_in_progress -= 1
                self._not_sent.append(result.call)
            elif isinstance(result, StopRequest):
                self._stop(result.reason, announce=False)  # its sender has said why
            else:
                self._recorder.notified(result)
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return

    def _apply_call(self, result: CallResult) -> None:
        self._calls_in_progress -= 1
        if result.stop is not None:
            self._stop(result.stop.describe())
            return
        self._recorder.call_answered(result)

    def _apply_sweep(self, sweep: Sweep) -> None:
        self._sweeping = False
        self._sweeps_done += 1
        if sweep.stop is not None:
            # Else the run would sweep, fail and wait for ever: stop it, resumably.
            self._stop(sweep.stop)
        self._schedule.swept(self._recorder.results_found(sweep.findings), sweep.requests)
        # In-doubt attempts the endpoint has moved past go back to the work, intents written.
        self._work.extend(self._recorder.overdue())

    def _start_sweep(self, sweeps: ThreadPoolExecutor) -> None:
        self._sweeping = True
        snapshot = self._recorder.watches()
        sweeps.submit(sweep, self._collector, snapshot, self._results.put, self._warn)

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

    def _elapsed(self) -> float:
        return self._monotonic() - self._started

    def _warn(self, message: str) -> None:
        self._subscribers.notice(NoticeLevel.WARNING, message)

    def _drain_calls(self) -> None:
        deadline = self._monotonic() + 30
        while self._calls_in_progress and self._monotonic() < deadline:
            try:
                result = self._results.get(timeout=0.5)
            except queue.Empty:
                continue
            if isinstance(result, CallResult):
                self._apply_call(result)
            elif isinstance(result, NotSent):
                self._calls_in_progress -= 1
                self._not_sent.append(result.call)

    # -- bookkeeping -----------------------------------------------------------------------

    def _flush_if_due(self) -> None:
        if self._writer.flush_if_due():
            self._intents.write_started()

    def _publish_progress(self, *, force: bool = False) -> None:
        now = self._monotonic()
        if not force and now - self._last_progress < self._settings.progress_interval:
            return
        self._last_progress = now
        self._subscribers.progress(
            self._recorder.progress(
                total=self._total,
                calls_in_progress=min(self._calls_in_progress, self._settings.concurrency),
                rate_limit=self._limiter.current_rate,
                elapsed_s=now - self._started,
                left=len(self._work) + len(self._ready),
            )
        )
