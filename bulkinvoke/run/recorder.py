"""What the engine thread learns, recorded: each call's answer (recorded by its call slot, see
``answer_event``), each result found in S3 or announced by a notification.

The :class:`Recorder` owns the run's counts, the attempts awaiting a result and the tally its stop
policy looks at; every move between states is checked against the state table
(``states.check_transition``), so an illegal one fails loudly rather than reach a ledger. It
records into the ledger's buffer; the engine decides when the buffer is written.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace

from bulkinvoke.calls.invoker import Call, CallResult
from bulkinvoke.events import Progress
from bulkinvoke.ledger.background import BackgroundWriter
from bulkinvoke.ledger.schema import Event
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.redaction import redact
from bulkinvoke.results.collector import Finding, Watch
from bulkinvoke.results.notifications import EarlyNotices, Received, ResultNotice
from bulkinvoke.run.doubt import Doubt
from bulkinvoke.run.stop import StopCondition, Tally
from bulkinvoke.states import UNSUCCESSFUL_STATES, State, check_transition

_EARLIER_RESULTS_WARNING = (
    "results found were written before their calls were made: they are an earlier run's, at "
    "the same deterministic locations (same manifest, endpoint and --id-namespace), and are "
    "taken as this run's (counted in the summary). For fresh results, start a run with another "
    "--id-namespace"
)


def answer_event(result: CallResult) -> Event:
    """The event that records a call's answer."""
    call, accepted = result.call, result.state is State.SUBMITTED
    return Event(
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


class Recorder:
    def __init__(
        self,
        ledger: Ledger,
        writer: BackgroundWriter,
        *,
        counts: dict[State, int],
        watches: Iterable[Watch],
        expected_result_by: Callable[[Call, float], float],
        stop_policy: StopCondition,
        stop: Callable[[str], None],
        warn: Callable[[str], None],
        doubts: Iterable[Doubt] = (),
        results_horizon: float = 0.0,
        longest_latency: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._writer = writer
        self.counts: Counter[State] = Counter(counts)
        self._watches: dict[tuple[int, int], Watch] = {(w.row, w.attempt): w for w in watches}
        # In-doubt attempts watched too (``--in-doubt wait``), by key.
        self._doubts = {(d.call.row, d.call.attempt): d for d in doubts}
        self._watches.update({key: d.watch for key, d in self._doubts.items()})
        self._watched_ids = {w.inference_id: key for key, w in self._watches.items()}
        self._horizon = results_horizon
        self._longest = longest_latency
        self.finished_ids: set[str] = set()
        self._early_notices = EarlyNotices()
        self._expected_result_by = expected_result_by
        self._tally = Tally(unsuccessful=sum(self.counts[s] for s in UNSUCCESSFUL_STATES))
        self._stop_policy = stop_policy
        self._stop = stop
        self._warn = warn
        self._clock = clock
        self.submitted = 0
        self._sending_s = 0.0
        self.retries = 0
        self.throttles = 0
        # Results found that were written before their calls: an earlier run's, at the same
        # deterministic locations.
        self.earlier_results = 0
        self.in_doubt_found = 0
        self.in_doubt_resent = 0

    @property
    def awaiting(self) -> int:
        return len(self._watches)

    def watches(self) -> list[Watch]:
        return list(self._watches.values())

    def overdue(self) -> list[Call]:
        """The in-doubt attempts to send again now (see ``Doubt.overdue``), no longer watched."""
        now = self._clock()
        due = [d for d in self._doubts.values() if d.overdue(now, self._horizon, self._longest)]
        for doubt in due:
            key = (doubt.call.row, doubt.call.attempt)
            del self._doubts[key]
            self._watched_ids.pop(self._watches.pop(key).inference_id, None)
        self.in_doubt_resent += len(due)
        return [doubt.call for doubt in due]

    def progress(
        self,
        *,
        total: int,
        calls_in_progress: int,
        rate_limit: float | None,
        elapsed_s: float,
        left: int,
    ) -> Progress:
        """A snapshot for the subscribers, ``left`` attempts still to send."""
        # The rate of sending, over the time spent sending: once every call is out, waiting
        # for results does not make it fall.
        if left or calls_in_progress:
            self._sending_s = elapsed_s
        # Not before a second has passed: the first calls alone, a few ms in, are no rate (and
        # would forecast the run's end from one call).
        span = self._sending_s
        rate = self.submitted / span if span >= 1.0 else None
        return Progress(
            total=total,
            counts={state: n for state, n in self.counts.items() if n},
            calls_in_progress=calls_in_progress,
            awaiting_results=self.awaiting,
            submit_rate=rate,
            rate_limit=rate_limit,
            throttles=self.throttles,
            retries=self.retries,
            elapsed_s=elapsed_s,
            eta_s=left / rate if rate and left else None,
        )

    def move(self, old: State, new: State, n: int = 1) -> None:
        """``n`` attempts went from ``old`` to ``new``."""
        check_transition(old, new)
        self.counts[old] -= n
        self.counts[new] += n
        if new in UNSUCCESSFUL_STATES:
            self._tally = replace(self._tally, unsuccessful=self._tally.unsuccessful + n)

    def call_answered(self, result: CallResult) -> None:
        """Count a call's answer, which its slot has made durable (``answer_event``);
        ``result.stop`` is the engine's to act on."""
        self.retries += result.retries
        self.throttles += result.throttles
        call = result.call
        accepted = result.state is State.SUBMITTED
        if accepted:
            self.submitted += 1
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
        self.move(State.SUBMITTING, result.state)
        early = self._early_notices.pop(call.inference_id)
        if early is not None and accepted:
            self._notice_applies((call.row, call.attempt), *early)
        failed = result.state is State.FAILED
        self._tally = replace(
            self._tally,
            failed_in_a_row=self._tally.failed_in_a_row + 1 if failed else 0,
            last_error=result.error if failed else self._tally.last_error,
        )
        self._check_stop_policy()

    def results_found(self, findings: list[Finding]) -> int:
        """Record what a sweep of S3 found; how many results (not expiries) were new."""
        earlier = sum(finding.written_before_call for finding in findings)
        if earlier and not self.earlier_results:
            self._warn(_EARLIER_RESULTS_WARNING)
        self.earlier_results += earlier
        found = 0
        for finding in findings:
            if self._finish(
                (finding.row, finding.attempt),
                finding.state,
                completed_at=finding.completed_at,
                output_bytes=finding.output_bytes,
                error=finding.error,
            ):
                found += finding.state is not State.EXPIRED
        return found

    def notified(self, received: Received) -> None:
        """Record what notifications said; each one's receipts are acknowledged once what it
        said is durable (or at once, when it was known already)."""
        for notice in received.notices:
            receipts = received.receipts[notice.inference_id]
            if notice.inference_id in self.finished_ids:
                self._writer.acknowledge_when_durable(receipts)
                continue
            key = self._watched_ids.get(notice.inference_id)
            if key is not None:
                self._notice_applies(key, notice, receipts)
            else:
                self._early_notices.keep(notice, receipts)

    def _notice_applies(
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
        self.finished_ids.add(watch.inference_id)
        in_doubt = self._doubts.pop(key, None) is not None
        if in_doubt:
            # Its answer was lost: where the result is comes from the watch.
            self.in_doubt_found += 1
            output_location = output_location or watch.output_location
            failure_location = failure_location or watch.failure_location
        elif state is not State.EXPIRED:
            self._horizon = max(self._horizon, watch.submitted_at)
            self._longest = max(self._longest, completed_at - watch.submitted_at)
        self.move(State.SUBMITTING if in_doubt else State.SUBMITTED, state)
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
        self._check_stop_policy()
        return True

    def _check_stop_policy(self) -> None:
        reason = self._stop_policy.reason(self._tally)
        if reason is not None:
            self._stop(reason)
