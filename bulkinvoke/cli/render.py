"""The terminal's forms of a run's report, end-of-run summary and status: rich tables and lines.

The data comes from ``bulkinvoke.reports``; only its rendering for people lives here, beside the
rest of what imports rich.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bulkinvoke.calls.metrics import LATENCY_WINDOW
from bulkinvoke.cli.errors import wide_when_piped
from bulkinvoke.reports.formatting import (
    attempts_line,
    duration,
    number,
    other_line,
    share,
    significant,
    timings_line,
)
from bulkinvoke.states import State

if TYPE_CHECKING:
    from bulkinvoke.reports.document import Report
    from bulkinvoke.run.runner import DryRun

# soft_wrap: a line is never broken at the terminal's (or a pipe's 80-column) width, so that
# figures and the commands printed to copy stay whole.
out = wide_when_piped(Console(soft_wrap=True))

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


def render_report(console: Console, report: Report) -> None:
    """Counts, one line of timings, one of attempts and the top failure reasons: short enough
    to end the output of ``submit``."""
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


def _counts_table(counts: dict[str, int], total: int) -> Table:
    table = Table(show_header=True, header_style="bold")
    table.add_column("state")
    table.add_column("items", justify="right")
    table.add_column("share", justify="right")
    for state in State:
        n = counts[state.value]
        if n:
            table.add_row(Text(state.value, STATE_STYLES[state.value]), str(n), share(n, total))
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
    if summary["in_doubt_found"] or summary["in_doubt_resent"]:
        console.print(
            f"in doubt after a crash: {summary['in_doubt_found']} found finished, "
            f"{summary['in_doubt_resent']} sent again"
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


def render_dry_run(console: Console, plan: DryRun, as_json: bool) -> None:
    summary = {
        "run_dir": str(plan.run_dir),
        "items": plan.total,
        "already_done": plan.already_done,
        "to_send": plan.to_send,
        "duplicates": plan.duplicates,
        "invalid": plan.invalid,
        "estimated_seconds": plan.estimated_s,
        "first_ids": [{"input_location": loc, "inference_id": i} for loc, i in plan.first_ids],
        "endpoint": plan.endpoint.to_config() if plan.endpoint else None,
        "processing_seconds": plan.processing.processing_s if plan.processing else None,
        "processing_seconds_at_most": plan.processing.at_most if plan.processing else None,
        "estimated_cost": plan.processing.cost if plan.processing else None,
        "seconds_per_item": plan.processing.seconds_per_item if plan.processing else None,
        "seconds_per_item_measured": plan.processing.measured if plan.processing else None,
        "payloads": plan.staging.payloads if plan.staging else None,
        "payloads_staged_already": plan.staging.staged_already if plan.staging else None,
    }
    if as_json:
        console.print_json(json.dumps(summary))
        return
    console.print(f"dry run: nothing was sent. Run directory: {plan.run_dir}")
    console.print(
        f"{plan.total} items, {plan.already_done} already done, {plan.to_send} to send; "
        f"{plan.duplicates} duplicate rows skipped, {plan.invalid} invalid rows"
    )
    for location, identifier in plan.first_ids:
        console.print(f"  {identifier}  {location}", highlight=False)
    if plan.staging is not None:
        console.print(
            f"{plan.staging.payloads} distinct payloads to stage, "
            f"{plan.staging.staged_already} of them there already"
        )
    if plan.estimated_s is None:
        console.print("no --rate given: the time depends on the endpoint's speed")
    else:
        console.print(f"at the given rate, sending takes about {plan.estimated_s:.0f} s")
    _render_endpoint(console, plan)


def _money(amount: float) -> str:
    """Two decimals, or the first two significant digits of less than a cent."""
    return f"{amount:,.2f}" if amount >= 0.01 or amount == 0 else significant(amount)


def _no_estimate(plan: DryRun) -> str:
    instances = plan.endpoint.instances if plan.endpoint else None
    if instances is None:
        return "a serverless endpoint: no estimate of its time"
    if instances == 0:
        return "0 instances: no estimate of the endpoint's time until it has some"
    return (
        "no --seconds-per-item, and no ModelLatency in the endpoint's metrics: no estimate of "
        "the endpoint's time"
    )


def _render_endpoint(console: Console, plan: DryRun) -> None:
    endpoint = plan.endpoint
    if endpoint is None:
        console.print("the endpoint was not described (see above, or --no-check-endpoint)")
        return
    if endpoint.instances is None:
        size = "serverless"
    else:
        size = f"{endpoint.instances} x {endpoint.instance_type or 'instances'}"
    per_instance = endpoint.max_concurrent_per_instance
    concurrency = (
        f", {per_instance} concurrent invocations each"
        if per_instance
        else ", concurrency per instance chosen by SageMaker (not reported)"
    )
    console.print(
        f"endpoint {endpoint.name}: {endpoint.status}, {size}{concurrency}",
        highlight=False,
    )
    failures = f", failures to {endpoint.failure_path}" if endpoint.failure_path else ""
    console.print(f"  outputs to {endpoint.output_path}{failures}", highlight=False)
    estimate = plan.processing
    if estimate is None:
        console.print(f"  {_no_estimate(plan)}")
        return
    bound = "at most " if estimate.at_most else "about "
    cost = f", costing {bound}{_money(estimate.cost)}" if estimate.cost is not None else ""
    hours = LATENCY_WINDOW.total_seconds() / 3600
    source = f"its ModelLatency over the last {hours:g} h" if estimate.measured else "as given"
    console.print(
        f"  the endpoint takes {bound}{duration(estimate.processing_s)} over the items to "
        f"send{cost} (at {duration(estimate.seconds_per_item)} per item, {source})"
    )
