"""The end-of-run summary and ``status``: plain dicts for scripts, rich tables for people."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkinvoke.states import State

if TYPE_CHECKING:
    from rich.console import Console

    from bulkinvoke.run.runner import RunResult

_NEXT_STEP = {
    "incomplete": "bulkinvoke resume {run_dir}",
    "stopped": "fix the cause above, then: bulkinvoke resume {run_dir}",
    "accepted": "bulkinvoke resume {run_dir}  (waits for the results)",
}
_STATE_STYLES = {
    State.SUCCEEDED: "green",
    State.FAILED: "red",
    State.EXPIRED: "red",
    State.REJECTED: "red",
    State.SUBMITTED: "cyan",
    State.SUBMITTING: "yellow",
    State.PENDING: "dim",
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
        "next_step": _next_step(result),
    }


def _next_step(result: RunResult) -> str | None:
    if result.local:
        return _next_local_step(result)
    template = _NEXT_STEP.get(result.outcome.value)
    step = template.format(run_dir=result.run_dir) if template else None
    to_retry = sum(int(result.counts.get(state, 0)) for state in (State.FAILED, State.EXPIRED))
    if to_retry and result.outcome.value in ("stopped", "complete"):
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
    if result.outcome.value not in _NEXT_STEP:
        return None
    again = "without --no-wait" if result.outcome.value == "accepted" else "again"
    return (
        f"run the same command {again} (--local's endpoint ended with this one; what it had "
        "not answered is sent again)"
    )


def run_status(run_dir: Path) -> dict[str, Any]:
    from bulkinvoke.ledger.errors import LedgerError
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


def _counts_table(counts: dict[str, int], total: int) -> Any:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold")
    table.add_column("state")
    table.add_column("items", justify="right")
    table.add_column("share", justify="right")
    for state in State:
        n = counts[state.value]
        if n:
            share = f"{100 * n / total:.1f}%" if total else "-"
            style = _STATE_STYLES[state]
            table.add_row(f"[{style}]{state.value}[/]", str(n), share)
    return table


def render_summary(console: Console, summary: dict[str, Any]) -> None:
    """What this session did; the report printed before it says what the run holds."""
    console.print(
        f"{summary['outcome']}: {summary['items']} items, "
        f"{summary['submitted_this_session']} sent this session in {summary['elapsed_s']:.1f} s"
        + (f" ({summary['finished_per_s']:.1f} finished/s)" if summary["finished_per_s"] else ""),
        highlight=False,
        markup=False,
    )
    if summary["duplicate_rows"]:
        console.print(f"{summary['duplicate_rows']} duplicate manifest rows were sent once")
    if summary["earlier_run_results"]:
        console.print(
            f"{summary['earlier_run_results']} results were an earlier run's (written before "
            "their calls): use another --id-namespace for fresh ones"
        )
    if summary["stop_reason"]:
        console.print(summary["stop_reason"], style="yellow", highlight=False, markup=False)
    console.print(f"ledger: {summary['run_dir']}", highlight=False, markup=False)
    if summary["next_step"]:
        console.print(f"next: {summary['next_step']}", highlight=False, markup=False)


def render_status(console: Console, summary: dict[str, Any]) -> None:
    console.print(
        f"{summary['run_dir']}: {summary['items']} items of {summary['manifest']} "
        f"on endpoint {summary['endpoint']}",
        highlight=False,
        markup=False,
    )
    console.print(_counts_table(summary["counts"], summary["items"]))
