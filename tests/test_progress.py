"""The live display and the log lines render every progress snapshot and notice as written."""

from __future__ import annotations

import io
from dataclasses import replace

from rich.console import Console

from bulkinvoke.cli.progress import LiveProgress, describe
from bulkinvoke.events import Notice, NoticeLevel, Progress
from bulkinvoke.states import State

SNAPSHOT = Progress(
    total=10,
    counts={State.SUBMITTED: 3, State.SUCCEEDED: 4, State.FAILED: 1, State.REJECTED: 1},
    calls_in_progress=2,
    awaiting_results=3,
    submit_rate=12.5,
    rate_limit=20.0,
    throttles=1,
    retries=2,
    elapsed_s=1.0,
    eta_s=75.0,
)


def test_live_display_draws_progress_and_notices_on_a_terminal() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    with LiveProgress(console) as live:
        live.on_progress(SNAPSHOT)
        live.on_notice(Notice(NoticeLevel.WARNING, "s3://bucket/[red]key[/] [1] not found"))
    text = screen.getvalue()
    assert "8/10" in text and "12.5/s (limit 20/s" in text and "1:15" in text
    assert "s3://bucket/[red]key[/] [1] not found" in text


def test_log_line_counts_what_was_sent() -> None:
    line = describe(SNAPSHOT)
    # A rejected row was never sent, nor did it fail: it is shown apart.
    assert line.startswith("8/10 sent, 4 succeeded, 1 failed, 1 rejected, 3 awaiting results")


def test_no_rate_and_no_eta_before_a_second_has_passed() -> None:
    first = replace(SNAPSHOT, submit_rate=None, eta_s=None, elapsed_s=0.01)
    line = describe(first)
    assert "calls in progress, - (limit 20/s)" in line and line.endswith("ETA -")
