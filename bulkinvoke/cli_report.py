"""``bulkinvoke report``: parse the options, build the report, render it in the chosen format."""

from __future__ import annotations

import io
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from bulkinvoke.exit_codes import ExitCode


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
    run_dir: Annotated[Path, typer.Argument(help="The run directory to report on.")],
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
    from its ledger alone (no AWS calls; works while the run is in progress)."""
    from bulkinvoke.ledger_errors import LedgerError
    from bulkinvoke.report import build_report

    chosen = format or _BY_SUFFIX.get(output.suffix.lower() if output else "", ReportFormat.TEXT)
    try:
        report = build_report(run_dir)
    except LedgerError as error:
        _fail(str(error))
    if output is None and chosen is ReportFormat.TEXT:
        from bulkinvoke.report_render import render_text

        render_text(Console(), report)
        return
    text = _render(report, chosen)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        _fail(f"cannot write {output}: {error.strerror}")
    Console(stderr=True).print(f"wrote the {chosen.value} report to {output}", highlight=False)


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(int(ExitCode.USAGE))


def _render(report: dict[str, Any], chosen: ReportFormat) -> str:
    if chosen is ReportFormat.JSON:
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if chosen is ReportFormat.MARKDOWN:
        from bulkinvoke.report_render import render_markdown

        return render_markdown(report)
    if chosen is ReportFormat.HTML:
        from bulkinvoke.report_html import render_html

        return render_html(report)
    from bulkinvoke.report_render import render_text

    buffer = io.StringIO()
    render_text(Console(file=buffer, width=TEXT_FILE_WIDTH), report)
    return buffer.getvalue()
