"""The end-of-run summary prints what the run says verbatim: error text is not rich markup."""

from __future__ import annotations

import io

from rich.console import Console

from bulkinvoke.cli.render import render_status, render_summary

STOP = "ClientError: expected [/] and [bold]kept[/bold] as written"
RUN_DIR = "/runs/[red]odd[/red]-dir"


def _printed(render: object, summary: dict[str, object]) -> str:
    out = io.StringIO()
    render(Console(file=out, width=200, color_system=None), summary)  # type: ignore[operator]
    return out.getvalue()


def test_a_stop_reason_and_paths_with_brackets_print_as_written() -> None:
    summary = {
        "outcome": "stopped",
        "items": 3,
        "submitted_this_session": 1,
        "elapsed_s": 1.0,
        "finished_per_s": 0.0,
        "duplicate_rows": 0,
        "earlier_run_results": 0,
        "in_doubt_found": 1,
        "in_doubt_resent": 2,
        "stop_reason": STOP,
        "run_dir": RUN_DIR,
        "next_step": f"bulkinvoke resume {RUN_DIR}",
    }
    printed = _printed(render_summary, summary)
    assert STOP in printed
    assert f"ledger: {RUN_DIR}" in printed and f"resume {RUN_DIR}" in printed
    assert "1 found finished, 2 sent again" in printed


def test_status_prints_the_run_dir_as_written() -> None:
    counts = {"pending": 3, "submitting": 0, "submitted": 0, "succeeded": 0, "failed": 0,
              "expired": 0, "rejected": 0}  # fmt: skip
    summary = {"run_dir": RUN_DIR, "items": 3, "manifest": "m[1].csv", "endpoint": "e",
               "counts": counts}  # fmt: skip
    assert f"{RUN_DIR}: 3 items of m[1].csv" in _printed(render_status, summary)


def test_a_local_run_names_the_same_command_never_resume_or_retry() -> None:
    from pathlib import Path

    from bulkinvoke.reports.summary import result_summary
    from bulkinvoke.run.outcome import Outcome
    from bulkinvoke.run.runner import RunResult
    from bulkinvoke.states import State

    def step(outcome: Outcome, **counts: int) -> str | None:
        result = RunResult(Path("/r"), outcome, {State(k): n for k, n in counts.items()}, 3, 1.0,
                           local=True)  # fmt: skip
        return result_summary(result)["next_step"]

    assert step(Outcome.STOPPED, pending=3).startswith("run the same command again (")
    assert step(Outcome.ACCEPTED, submitted=3).startswith("run the same command without --no-wait")
    assert step(Outcome.COMPLETE, succeeded=2, failed=1) is None
