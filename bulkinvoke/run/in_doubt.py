"""What earlier sessions left unsettled, looked up once in S3 before a session goes on: attempts
in doubt (recorded as submitting; their call may or may not have gone out) and expired attempts
whose results may have come late. Each one found is recorded as what it became, so that it is
not sent, or paid for, again.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from bulkinvoke.calls.invoker import Call
from bulkinvoke.calls.retry import classify
from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.ledger.schema import Event
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.redaction import redact
from bulkinvoke.results.collector import Collector, Finding, Watch
from bulkinvoke.run.doubt import Doubt, InDoubt
from bulkinvoke.run.work import RunState
from bulkinvoke.states import State

if TYPE_CHECKING:
    from collections.abc import Callable


def settle_in_doubt(
    ledger: Ledger,
    state: RunState,
    collector: Collector,
    subscribers: Subscribers,
    mode: InDoubt = InDoubt.RESEND,
    expires_after: Callable[[Call, float], float] | None = None,
) -> str | None:
    """Attempts whose call may or may not have been sent: finished ones are not sent again;
    the others are sent again at once, or with ``InDoubt.WAIT`` become ``state.doubts``
    (expiring at ``expires_after(call, since)``) unless already overdue. Returns why the run
    must stop instead, if S3 cannot be asked which are finished."""
    from botocore.exceptions import BotoCoreError, ClientError

    watches = [
        Watch(call.row, call.attempt, call.inference_id, location, state.expected_failure(call),
              0.0, math.inf, call.options.custom_attributes)
        for call in state.in_doubt
        if (location := state.expected_output(call)) is not None
    ]  # fmt: skip
    try:
        findings = collector.sweep(watches) if watches else []
    except (ClientError, BotoCoreError) as error:
        # Sending them again blind could repeat every one; the next resume asks again.
        return (
            f"cannot check S3 for the outputs of {len(watches)} in-doubt items "
            f"({classify(error).describe()}); resume once S3 can be read"
        )
    finished = _record_findings(ledger, state, watches, findings, State.SUBMITTING)
    left = [call for call in state.in_doubt if (call.row, call.attempt) not in finished]
    watched = {(w.row, w.attempt): w for w in watches}
    if mode is InDoubt.WAIT and expires_after is not None:
        now = time.time()
        for call in left:
            key = (call.row, call.attempt)
            since = state.in_doubt_since.get(key, 0.0)
            if key in watched:
                doubt = Doubt(call, watched[key], since, expires_after(call, since))
                if not doubt.overdue(now, state.results_horizon, state.longest_latency):
                    state.doubts.append(doubt)
    waiting = {(d.call.row, d.call.attempt) for d in state.doubts}
    resend = [call for call in left if (call.row, call.attempt) not in waiting]
    state.work[:0] = resend
    state.in_doubt = left
    state.in_doubt_found += len(finished)
    state.in_doubt_resent += len(resend)
    subscribers.notice(
        NoticeLevel.INFO,
        f"{len(finished)} in-doubt item(s) already had a result; {len(resend)} will be sent "
        f"again" + (f", {len(waiting)} watched until overdue" if waiting else ""),
    )
    return None


def look_for_late_results(
    ledger: Ledger, state: RunState, collector: Collector, subscribers: Subscribers
) -> None:
    """Record the results that expired attempts got after all (a slow endpoint), so that
    neither a retry nor the report counts them as lost. S3 trouble here only costs the look."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        findings = collector.sweep(state.expired)
    except (ClientError, BotoCoreError) as error:
        subscribers.notice(
            NoticeLevel.WARNING,
            f"cannot look for late results of {len(state.expired)} expired items "
            f"({classify(error).describe()}); they stay expired",
        )
        return
    found = _record_findings(ledger, state, state.expired, findings, State.EXPIRED)
    state.expired = [w for w in state.expired if (w.row, w.attempt) not in found]
    if found:
        subscribers.notice(
            NoticeLevel.INFO, f"{len(found)} expired item(s) got their results after all"
        )


def _record_findings(
    ledger: Ledger, state: RunState, watches: list[Watch], findings: list[Finding], was: State
) -> set[tuple[int, int]]:
    """Record what a one-off sweep of ``watches`` (attempts in state ``was``) found; the keys."""
    watched = {(w.row, w.attempt): w for w in watches}
    now = time.time()
    for finding in findings:
        watch = watched[(finding.row, finding.attempt)]
        ledger.record(
            Event(
                finding.row,
                finding.attempt,
                finding.state,
                now,
                completed_at=finding.completed_at,
                output_bytes=finding.output_bytes,
                output_location=watch.output_location,
                failure_location=watch.failure_location,
                error=None
                if finding.error is None
                else redact(finding.error, watch.custom_attributes),
            )
        )
        state.counts[was] -= 1
        state.counts[finding.state] = state.counts.get(finding.state, 0) + 1
    ledger.flush()
    return {(f.row, f.attempt) for f in findings}
