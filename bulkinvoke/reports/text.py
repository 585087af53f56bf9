"""The report (see ``bulkinvoke.reports.model``) for people: rich tables in a terminal, or Markdown.

rich is imported inside ``render_text`` only, so that the formatting helpers here serve the HTML
form too without loading it.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bulkinvoke.states import State

if TYPE_CHECKING:
    from rich.console import Console

TEXT_GROUPS = 5
STATE_STYLES = {
    "succeeded": "green",
    "failed": "red",
    "expired": "dark_orange",
    "rejected": "magenta",
    "submitted": "cyan",
    "submitting": "yellow",
    "pending": "dim",
}


def number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def items(count: int) -> str:
    return f"{number(count)} item{'s' * (count != 1)}"


def share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def duration(seconds: float | None) -> str:
    """A duration as people say it: 850 ms, 4.2 s, 3m 05s, 2h 10m, 3d 4h."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def moment(iso: str | None) -> str:
    """An ISO timestamp from the report, to the second: 2024-05-01 13:45:10 UTC."""
    if iso is None:
        return "-"
    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M:%S} UTC"


def size(count: float | None) -> str:
    if count is None:
        return "-"
    units = ("B", "KB", "MB", "GB", "TB", "PB")
    power = 0 if count < 1000 else min(int(math.log(count, 1000)), len(units) - 1)
    scaled = count / 1000**power
    return f"{scaled:.0f} {units[power]}" if power == 0 else f"{scaled:.3g} {units[power]}"


def short(value: float) -> str:
    """A tick label: 950, 1.5k, 20k, 3M."""
    for factor, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:g}"


def span(seconds: float) -> str:
    """A time span in its largest whole unit: 15 s, 2 min, 6 h."""
    for factor, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= factor:
            return f"{seconds / factor:g} {unit}"
    return f"{seconds:g} s"


def rate(per_s: float | None) -> str:
    if per_s is None:
        return "-"
    return f"{per_s:,.1f}/s" if per_s >= 1 else f"{per_s * 60:,.2f}/min"


def timings_line(report: dict[str, Any]) -> str:
    timings, latency = report["timings"], report["latency_s"]
    parts = [
        f"wall {duration(timings['wall_s'])}",
        f"{number(timings['finished'])} finished ({rate(timings['throughput_per_s'])})",
    ]
    if latency["count"]:
        parts.append(
            f"latency p50 {duration(latency['p50'])}, p90 {duration(latency['p90'])}, "
            f"p99 {duration(latency['p99'])}, max {duration(latency['max'])}"
        )
    return " · ".join(parts)


def attempts_line(report: dict[str, Any]) -> str:
    attempts, output = report["attempts"], report["output_bytes"]
    return (
        f"{number(attempts['retried_items'])} items tried more than once, "
        f"{number(attempts['total'])} attempts, {number(attempts['retries'])} retries, "
        f"{number(attempts['throttles'])} throttled · output {size(output['total'])}"
        + (f" (mean {size(output['mean'])})" if output["mean"] is not None else "")
    )


def other_line(failures: dict[str, Any], shown: int) -> str | None:
    """What the listed groups leave out, or None when they are all there is."""
    groups = max(len(failures["groups"]) - shown, 0) + failures["other"]["groups"]
    if not groups:
        return None
    items = failures["items"] - sum(g["count"] for g in failures["groups"][:shown])
    return f"… and {number(groups)} more reasons ({number(items)} items)"


def render_text(console: Console, report: dict[str, Any]) -> None:
    """Counts, one line of timings, one of attempts and the top failure reasons: short enough
    to end the output of ``submit``."""
    from rich.table import Table
    from rich.text import Text

    total = report["items"]
    counts = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
    counts.add_column("state")
    counts.add_column("items", justify="right")
    counts.add_column("share", justify="right")
    for state in State:
        n = report["counts"][state.value]
        if n:
            counts.add_row(Text(state.value, STATE_STYLES[state.value]), number(n), share(n, total))
    counts.add_row(Text("total", "bold"), number(total), "")
    console.print(counts)
    console.print(timings_line(report), highlight=False, markup=False)
    console.print(attempts_line(report), highlight=False, markup=False)
    failures = report["failures"]
    if not failures["groups"]:
        return
    table = Table(
        title="top failure reasons", title_justify="left", header_style="bold", expand=False
    )
    table.add_column("items", justify="right")
    table.add_column("state")
    table.add_column("reason (and an example input)", overflow="fold")
    for group in failures["groups"][:TEXT_GROUPS]:
        reason = Text(group["reason"])
        if group["examples"]:
            reason.append(f"\n{group['examples'][0]}", style="dim")
        table.add_row(
            number(group["count"]), Text(group["state"], STATE_STYLES[group["state"]]), reason
        )
    console.print(table)
    rest = other_line(failures, TEXT_GROUPS)
    if rest:
        console.print(rest, highlight=False, markup=False)


def _code(text: str) -> str:
    """A Markdown code span inside a table cell: placeholders like <n> would read as HTML tags
    outside one, and a pipe would end the cell even inside one."""
    text = text.replace("|", "\\|")
    fence, pad = ("``", " ") if "`" in text else ("`", "")
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return ["| " + " | ".join(cells) + " |" for cells in (header, rule, *rows)]


def render_markdown(report: dict[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown."""
    run, total = report["run"], report["items"]
    lines = [f"# bulkinvoke report: {_code(run['run_dir'])}", ""]
    about = [items(total)]
    if run["endpoint"]:
        about.append(f"endpoint {_code(run['endpoint'])}")
    if run["manifest"]:
        about.append(f"manifest {_code(run['manifest'])}")
    lines += [", ".join(about) + ".", "", "## Items by state", ""]
    counts = [
        [s.value, number(report["counts"][s.value]), share(report["counts"][s.value], total)]
        for s in State
    ]
    lines += _table(["state", "items", "share"], counts, {1, 2})
    timings, latency = report["timings"], report["latency_s"]
    lines += ["", "## Timings", ""]
    lines += _table(
        ["first submitted", "last finished", "wall time", "finished", "throughput"],
        [
            [
                moment(timings["first_submitted_at"]),
                moment(timings["last_finished_at"]),
                duration(timings["wall_s"]),
                number(timings["finished"]),
                rate(timings["throughput_per_s"]),
            ]
        ],
        {2, 3, 4},
    )
    lines += ["", "## Latency, submitted to output written (succeeded items)", ""]
    keys = ["p50", "p90", "p99", "max", "mean"]
    lines += _table(
        ["items", *keys],
        [[number(latency["count"]), *(duration(latency[k]) for k in keys)]],
        set(range(6)),
    )
    attempts, output = report["attempts"], report["output_bytes"]
    lines += ["", "## Attempts and output", ""]
    lines += _table(
        ["items tried more than once", "attempts", "retries", "throttled", "output", "mean output"],
        [
            [
                number(attempts["retried_items"]),
                number(attempts["total"]),
                number(attempts["retries"]),
                number(attempts["throttles"]),
                size(output["total"]),
                size(output["mean"]),
            ]
        ],
        set(range(6)),
    )
    failures = report["failures"]
    lines += ["", f"## Failures ({items(failures['items'])})", ""]
    if failures["groups"]:
        rows = [
            [
                number(g["count"]),
                g["state"],
                _code(g["reason"]),
                "<br>".join(_code(e) for e in g["examples"]),
            ]
            for g in failures["groups"]
        ]
        lines += _table(["items", "state", "reason", "examples"], rows, {0})
        rest = other_line(failures, len(failures["groups"]))
        if rest:
            lines += ["", rest]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"
