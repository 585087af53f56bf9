"""The end-of-run summary and ``status`` as plain dicts (for scripts, and for ``cli.render``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bulkinvoke.run.outcome import Outcome, RunResult
from bulkinvoke.states import State

_NEXT_STEP = {
    Outcome.INCOMPLETE: "bulkinvoke resume {run_dir}",
    Outcome.STOPPED: "fix the cause above, then: bulkinvoke resume {run_dir}",
    Outcome.ACCEPTED: "bulkinvoke resume {run_dir}  (waits for the results)",
}


def _all_counts(counts: dict[State, int]) -> dict[str, int]:
    return {state.value: int(counts.get(state, 0)) for state in State}


def result_summary(result: RunResult) -> dict[str, Any]:
    finished = sum(n for state, n in result.counts.items() if state.is_final)
    return {
        "run_dir": str(result.run_dir),
        "outcome": result.outcome.value,
        "exit_code": int(result.exit_code),
        "items": result.total,
        "counts": _all_counts(result.counts),
        "submitted_this_session": result.submitted,
        "elapsed_s": round(result.elapsed_s, 3),
        "finished_per_s": round(finished / result.elapsed_s, 3) if result.elapsed_s else None,
        "stop_reason": result.stop_reason,
        "duplicate_rows": result.duplicates,
        "s3_requests": result.s3_requests,
        "earlier_run_results": result.earlier_results,
        "in_doubt_found": result.in_doubt_found,
        "in_doubt_resent": result.in_doubt_resent,
        "next_step": _next_step(result),
    }


def _next_step(result: RunResult) -> str | None:
    if result.local:
        return _next_local_step(result)
    template = _NEXT_STEP.get(result.outcome)
    step = template.format(run_dir=result.run_dir) if template else None
    to_retry = sum(int(result.counts.get(state, 0)) for state in (State.FAILED, State.EXPIRED))
    if to_retry and result.outcome in (Outcome.STOPPED, Outcome.COMPLETE):
        # resume never sends a finished item again: failed and expired ones need retry.
        retry = (
            f"bulkinvoke retry {result.run_dir}  (sends the {to_retry} failed or expired "
            "items again)"
        )
        step = f"{step}; and {retry}" if step else retry
    return step


def _next_local_step(result: RunResult) -> str | None:
    # resume and retry would look for the emulator that ended with the command, and with
    # --no-wait every session would end before its results came.
    if result.outcome not in _NEXT_STEP:
        return None
    again = "without --no-wait" if result.outcome is Outcome.ACCEPTED else "again"
    return (
        f"run the same command {again} (--local's endpoint ended with this one; what it had "
        "not answered is sent again)"
    )


def run_status(run_dir: Path) -> dict[str, Any]:
    from bulkinvoke.errors import LedgerError
    from bulkinvoke.ledger.store import Ledger

    if not Ledger.exists(run_dir):
        raise LedgerError(f"{run_dir} holds no bulkinvoke run")
    with Ledger.open(run_dir, writable=False) as ledger:
        counts = ledger.counts()
        config = ledger.config
    return {
        "run_dir": str(run_dir),
        "endpoint": config["options"]["endpoint"],
        "manifest": config["manifest"]["source"],
        "items": sum(counts.values()),
        "counts": _all_counts(counts),
    }
