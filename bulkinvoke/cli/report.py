"""``bulkinvoke report`` and ``status``: what a run holds, read from its ledger alone."""

from __future__ import annotations

import io
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from bulkinvoke.cli.errors import err, expected_errors, fail, wide_when_piped
from bulkinvoke.cli.options import RunDirArgument
from bulkinvoke.cli.render import out, render_report, render_status

if TYPE_CHECKING:
    from bulkinvoke.reports.document import Report


class ReportFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"


_BY_SUFFIX = {
    ".json": ReportFormat.JSON,
    ".md": ReportFormat.MARKDOWN,
    ".markdown": ReportFormat.MARKDOWN,
    ".html": ReportFormat.HTML,
    ".htm": ReportFormat.HTML,
}
# A file has no terminal to measure; this keeps the text form's tables readable in an editor.
TEXT_FILE_WIDTH = 120


def report_command(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN_DIR...",
            help="The run directory to report on; or several, or s3:// ledger prefixes "
            "(--ledger-uri), whose runs (the shards of one run) make one report.",
        ),
    ],
    format: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format",
            "-f",
            case_sensitive=False,
            help="text (tables for a terminal), json (for scripts; see docs/REPORT.md), "
            "markdown or html (one self-contained page with charts) "
            "(default: from the extension of --output, else text).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
    ] = None,
) -> None:
    """Counts, timings, latency percentiles, failures grouped by reason and charts of a run,
    from its ledger alone (no AWS calls but to download s3:// ledgers; works while the run is
    in progress). The shards of one run make one report of their union."""
    from bulkinvoke.reports.model import build_report
    from bulkinvoke.scale.union import local_runs

    chosen = format or _BY_SUFFIX.get(output.suffix.lower() if output else "", ReportFormat.TEXT)
    with expected_errors(), local_runs(sources) as run_dirs:
        report = build_report(run_dirs[0] if len(run_dirs) == 1 else run_dirs)
    # Downloaded runs live in a temporary directory: name them as the user did.
    report["run"]["run_dir"] = ", ".join(sources)
    if output is None and chosen is ReportFormat.TEXT:
        render_report(wide_when_piped(Console(soft_wrap=True)), report)
        return
    text = _render(report, chosen)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror}")
    err.print(f"wrote the {chosen.value} report to {output}", highlight=False, markup=False)


def _render(report: Report, chosen: ReportFormat) -> str:
    if chosen is ReportFormat.JSON:
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if chosen is ReportFormat.MARKDOWN:
        from bulkinvoke.reports.markdown import render_markdown

        return render_markdown(report)
    if chosen is ReportFormat.HTML:
        from bulkinvoke.reports.html import render_html

        return render_html(report)
    buffer = io.StringIO()
    render_report(Console(file=buffer, width=TEXT_FILE_WIDTH, soft_wrap=True), report)
    return buffer.getvalue()


def status_command(
    run_dir: RunDirArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Counts by state, from the ledger alone (no AWS calls)."""
    from bulkinvoke.reports.summary import run_status

    with expected_errors():
        summary = run_status(run_dir)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        render_status(out, summary)
