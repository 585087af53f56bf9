"""Showing a run's progress: a live rich display on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from bulkinvoke.events import Notice, NoticeLevel, Progress
from bulkinvoke.states import State

_STYLES = {NoticeLevel.INFO: "cyan", NoticeLevel.WARNING: "yellow", NoticeLevel.ERROR: "bold red"}


def _eta(progress: Progress) -> str:
    if progress.eta_s is None:
        return "-"
    minutes, seconds = divmod(int(progress.eta_s), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _rate(progress: Progress) -> str:
    return "-" if progress.submit_rate is None else f"{progress.submit_rate:.1f}/s"


def _limit(progress: Progress) -> str:
    return "unlimited" if progress.rate_limit is None else f"{progress.rate_limit:.0f}/s"


def _sent(progress: Progress) -> int:
    """Items sent and accepted: rows refused before sending (``rejected``) are not among them."""
    return progress.count(State.SUBMITTED, State.SUCCEEDED, State.FAILED, State.EXPIRED)


def endpoint_load(progress: Progress) -> str | None:
    """The endpoint's own view of its queue (its CloudWatch metrics), when there is one."""
    load = progress.endpoint
    if load is None:
        return None
    queued = f", {load.backlog:.0f} queued" if load.backlog is not None else ""
    if load.scaling_up:
        return f"endpoint scaling up from 0 instances{queued}"
    if load.backlog is None:
        return None
    per_instance = (
        f" ({load.backlog_per_instance:.1f} per instance)"
        if load.backlog_per_instance is not None
        else ""
    )
    return f"endpoint backlog {load.backlog:.0f}{per_instance}"


def describe(progress: Progress) -> str:
    done = progress.count(State.SUCCEEDED)
    failed = progress.count(State.FAILED, State.EXPIRED)
    rejected = progress.count(State.REJECTED)
    return (
        f"{_sent(progress)}/{progress.total} sent, "
        f"{done} succeeded, {failed} failed, "
        + (f"{rejected} rejected, " if rejected else "")
        + f"{progress.awaiting_results} awaiting results, "
        f"{progress.calls_in_progress} calls in progress, {_rate(progress)} "
        f"(limit {_limit(progress)}), {progress.throttles} throttled, "
        f"{progress.retries} retried, ETA {_eta(progress)}"
        + (f", {load}" if (load := endpoint_load(progress)) else "")
    )


class LiveProgress:
    """A table redrawn in place; notices scroll above it."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live = Live(console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def on_progress(self, progress: Progress) -> None:
        table = Table.grid(padding=(0, 2))
        for name in ("sent", "succeeded", "failed", "awaiting", "in progress", "rate", "ETA"):
            table.add_column(name, justify="right")
        table.add_row(
            *(
                f"[bold]{name}[/]"
                for name in ("sent", "succeeded", "failed", "awaiting", "calls", "rate", "ETA")
            )
        )
        done = progress.count(State.SUCCEEDED)
        failed = progress.count(State.FAILED, State.EXPIRED)
        rejected = progress.count(State.REJECTED)
        table.add_row(
            f"{_sent(progress)}/{progress.total}",
            f"[green]{done}[/]",
            f"[red]{failed}[/]" + (f" (+{rejected} rejected)" if rejected else ""),
            str(progress.awaiting_results),
            str(progress.calls_in_progress),
            f"{_rate(progress)} (limit {_limit(progress)}, {progress.throttles} throttled)",
            _eta(progress),
        )
        load = endpoint_load(progress)
        self._live.update(Group(table, f"[cyan]{escape(load)}[/]") if load else table)

    def on_notice(self, notice: Notice) -> None:
        self._console.print(f"[{_STYLES[notice.level]}]{escape(notice.message)}[/]")


class LogProgress:
    """One plain line every ``interval`` seconds, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0) -> None:
        self._stream = stream or sys.stderr
        self._interval = interval
        self._last = 0.0

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def on_progress(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._write(f"progress: {describe(progress)}")

    def on_notice(self, notice: Notice) -> None:
        self._write(f"{notice.level.value}: {notice.message}")

    def _write(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        print(f"{stamp} bulkinvoke {line}", file=self._stream, flush=True)


class WarningsOnly(LogProgress):
    """For --quiet and --json: no progress, but warnings and errors still reach stderr."""

    def on_progress(self, progress: Progress) -> None:
        return None

    def on_notice(self, notice: Notice) -> None:
        if notice.level is not NoticeLevel.INFO:
            super().on_notice(notice)
