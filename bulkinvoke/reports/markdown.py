"""The report (see ``bulkinvoke.reports.model``) as GitHub-flavoured Markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bulkinvoke.reports.document import LATENCY_FIGURES
from bulkinvoke.reports.formatting import (
    duration,
    items,
    moment,
    number,
    other_line,
    rate,
    share,
    size,
)
from bulkinvoke.states import State

if TYPE_CHECKING:
    from bulkinvoke.reports.document import Report


def _code(text: str) -> str:
    """A Markdown code span inside a table cell: placeholders like <n> would read as HTML tags
    outside one, and a pipe would end the cell even inside one."""
    text = text.replace("|", "\\|")
    fence, pad = ("``", " ") if "`" in text else ("`", "")
    return f"{fence}{pad}{text}{pad}{fence}"


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return ["| " + " | ".join(cells) + " |" for cells in (header, rule, *rows)]


def render_markdown(report: Report) -> str:
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
    lines += _table(
        ["items", *LATENCY_FIGURES],
        [[number(latency["count"]), *(duration(latency[k]) for k in LATENCY_FIGURES)]],
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
