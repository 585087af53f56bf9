"""The report agrees with the ledger it is built from, and every rendering of it works."""

from __future__ import annotations

import io
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pytest
import typer
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from bulkinvoke.cli.render import render_report
from bulkinvoke.cli.report import report_command
from bulkinvoke.export.frame import read_ledger
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.reports.html import render_html
from bulkinvoke.reports.markdown import render_markdown
from bulkinvoke.reports.model import REASON_MAX, TOP_GROUPS, build_report, normalise
from bulkinvoke.states import State

T0 = 1_700_000_000.0
RUN_ATTRIBUTES = "tenant=acme;token=run-wide-attr-9f1c"
SUCCEEDED, FAILED, EXPIRED, REJECTED = (
    State.SUCCEEDED,
    State.FAILED,
    State.EXPIRED,
    State.REJECTED,
)


@dataclass(frozen=True)
class Item:
    """One manifest row and what happened to it; times in seconds after T0."""

    state: State = State.PENDING
    submitted: float = 0.0
    took: float = 1.0  # submitted to output, failure or expiry
    error: str | None = None
    attempts: int = 1
    retries: int = 0
    throttles: int = 0
    output_bytes: int = 100
    custom_attributes: str | None = None


def location(row: int) -> str:
    return f"s3://in-bucket/data/{row:06d}.json"


def _attempt_events(row: int, attempt: int, item: Item, last: bool) -> list[Event]:
    start = T0 + item.submitted - (item.attempts - attempt) * 1000.0
    end = start + item.took
    state = item.state if last else EXPIRED
    events = [Event(row, attempt, State.SUBMITTING, start - 0.001)]
    if state is State.SUBMITTING:
        return events
    if state is REJECTED:
        return [*events, Event(row, attempt, REJECTED, start, error=item.error)]
    events.append(
        Event(
            row,
            attempt,
            State.SUBMITTED,
            start,
            submitted_at=start,
            retries=item.retries,
            throttles=item.throttles,
        )
    )
    if state is SUCCEEDED:
        events.append(
            Event(row, attempt, state, end, completed_at=end, output_bytes=item.output_bytes)
        )
    elif state is FAILED:
        events.append(Event(row, attempt, state, end, completed_at=end, error=item.error))
    elif state is EXPIRED:
        events.append(Event(row, attempt, state, end, error=item.error or "no output in time"))
    return events


def make_run(run_dir: Path, items: list[Item], run_attributes: str | None = None) -> Path:
    """A run directory whose ledger holds ``items`` (rows numbered from 1, in order)."""
    rows = list(range(1, len(items) + 1))
    plan = pa.table(
        {
            "row": pa.array(rows, pa.int64()),
            "input_location": [location(r) for r in rows],
            "custom_attributes": pa.array([i.custom_attributes for i in items], pa.string()),
        }
    )
    config = {
        "version": 1,
        "created_at": T0 - 5,
        "manifest": {"source": "manifests/test.csv"},
        "options": {"endpoint": "test-endpoint", "request": {"custom_attributes": run_attributes}},
    }
    with Ledger.create(run_dir, config, plan) as ledger:
        for row, item in zip(rows, items, strict=True):
            if item.state is not State.PENDING:
                for attempt in range(1, item.attempts + 1):
                    ledger.record_many(
                        _attempt_events(row, attempt, item, attempt == item.attempts)
                    )
        ledger.flush()
    return run_dir


def mixed_items(count: int, seed: int = 7) -> list[Item]:
    """A run with every state, spread latencies and a few failure reasons."""
    rng = np.random.default_rng(seed)
    states = rng.choice(
        [SUCCEEDED, FAILED, EXPIRED, REJECTED, State.SUBMITTED, State.PENDING],
        size=count,
        p=[0.7, 0.12, 0.05, 0.05, 0.05, 0.03],
    )
    # The first item succeeds, so that every finished item ends after the first submission.
    states[0] = SUCCEEDED
    items = []
    for i, state in enumerate(states):
        state = State(str(state))
        error = None
        if state is FAILED:
            error = [
                f"ModelError: inference bi-{'abcdefghijklmnopqrstuvwx'[i % 24 :] + 'a' * (i % 24)} "
                f"ran out of memory after {i * 7 % 1000} ms reading {location(i + 1)}",
                f"CUDA error 0x{i * 2654435761 % 2**32:08x}: device-side assert triggered",
            ][i % 2]
        elif state is REJECTED:
            error = f"ValidationError: body of {i * 31 % 900 + 100} bytes is too large"
        items.append(
            Item(
                state,
                submitted=float(i) * 0.5,
                took=float(rng.lognormal(0.5, 0.9)),
                error=error,
                attempts=1 + (i % 17 == 0),
                retries=int(i % 5 == 0),
                throttles=int(i % 11 == 0),
                output_bytes=500 + i,
            )
        )
    return items


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("mixed") / "run", mixed_items(400), RUN_ATTRIBUTES)


@pytest.fixture(scope="module")
def mixed_report(mixed_run: Path) -> dict:
    return build_report(mixed_run)


def test_counts_agree_with_the_ledger(mixed_run: Path, mixed_report: dict) -> None:
    with Ledger.open(mixed_run, writable=False) as ledger:
        expected = {state.value: n for state, n in ledger.counts().items()}
    assert mixed_report["counts"] == expected
    assert list(mixed_report["counts"]) == [s.value for s in State]
    assert mixed_report["items"] == 400 == sum(mixed_report["counts"].values())


def test_numbers_agree_with_read_ledger(mixed_run: Path, mixed_report: dict) -> None:
    table = read_ledger(mixed_run)
    succeeded = table[table["state"] == "succeeded"]
    latency = succeeded["latency_s"].to_numpy(dtype=float)
    p50, p90, p99 = np.percentile(latency, [50, 90, 99])
    got = mixed_report["latency_s"]
    assert got["count"] == len(succeeded)
    for key, value in {"p50": p50, "p90": p90, "p99": p99, "max": latency.max()}.items():
        assert got[key] == pytest.approx(value, abs=1e-3), key
    assert got["mean"] == pytest.approx(latency.mean(), abs=1e-3)
    attempts = mixed_report["attempts"]
    assert attempts["total"] == int(table["attempts"].sum())
    assert attempts["retried_items"] == int((table["attempts"] > 1).sum())
    assert attempts["retries"] == int(table["retries"].sum())
    assert attempts["throttles"] == int(table["throttles"].sum())
    assert mixed_report["output_bytes"]["total"] == int(table["output_bytes"].sum())
    assert mixed_report["output_bytes"]["mean"] == pytest.approx(
        table["output_bytes"].dropna().mean(), abs=1e-3
    )


def test_wall_time_and_throughput(mixed_run: Path, mixed_report: dict) -> None:
    table = read_ledger(mixed_run)
    first = table["submitted_at"].min().timestamp()
    # Expired and rejected items have no completion time; their end is their last event's.
    ends = [T0 + i.submitted + i.took for i in mixed_items(400) if i.state in (FAILED, EXPIRED)]
    ends += [t.timestamp() for t in table["completed_at"].dropna()]
    timings = mixed_report["timings"]
    assert timings["wall_s"] == pytest.approx(max(ends) - first, abs=2e-3)
    finished = sum(
        mixed_report["counts"][s] for s in ("succeeded", "failed", "expired", "rejected")
    )
    assert timings["finished"] == finished
    assert timings["throughput_per_s"] == pytest.approx(finished / timings["wall_s"], rel=1e-3)
    assert timings["first_submitted_at"].startswith("2023-11-14T22:13:20")


def test_time_series_and_histogram_add_up(mixed_report: dict) -> None:
    series = mixed_report["completions"]
    assert 30 <= series["buckets"] <= 61
    assert all(len(v) == series["buckets"] for v in series["series"].values())
    assert sum(sum(v) for v in series["series"].values()) == mixed_report["timings"]["finished"]
    assert sum(series["series"]["succeeded"]) == mixed_report["counts"]["succeeded"]
    histogram = mixed_report["latency_histogram"]
    assert len(histogram["edges"]) == len(histogram["counts"]) + 1
    assert 20 <= len(histogram["counts"]) <= 30
    assert histogram["edges"] == sorted(histogram["edges"])
    assert sum(histogram["counts"]) == mixed_report["latency_s"]["count"]


def test_failures_group_messages_that_differ_only_in_ids_and_numbers(
    mixed_run: Path, mixed_report: dict
) -> None:
    failures = mixed_report["failures"]
    counts = mixed_report["counts"]
    assert failures["items"] == counts["failed"] + counts["expired"] + counts["rejected"]
    by_reason = {(g["state"], g["reason"]): g for g in failures["groups"]}
    assert len(by_reason) == 4, sorted(by_reason)
    model = by_reason[
        (
            "failed",
            "ModelError: inference <inference-id> ran out of memory after <n> ms reading "
            "<location>",
        )
    ]
    cuda = by_reason[("failed", "CUDA error <hex>: device-side assert triggered")]
    assert model["count"] + cuda["count"] == counts["failed"]
    assert by_reason[("expired", "no output in time")]["count"] == counts["expired"]
    rejected = by_reason[("rejected", "ValidationError: body of <n> bytes is too large")]
    assert rejected["count"] == counts["rejected"]
    sizes = [g["count"] for g in failures["groups"]]
    assert sizes == sorted(sizes, reverse=True)
    assert failures["other"] == {"groups": 0, "items": 0}
    table = read_ledger(mixed_run)
    for group in failures["groups"]:
        assert 1 <= len(group["examples"]) <= 3
        for example in group["examples"]:
            assert table.loc[table["input_location"] == example, "state"].item() == group["state"]


def test_groups_beyond_the_top_are_counted_as_other(tmp_path: Path) -> None:
    items = [
        Item(FAILED, submitted=float(i), error=f"{'ABCDEFGHIJKLMNOPQRSTUVWXY'[i % 25]} broke")
        for i in range(100)
    ]
    failures = build_report(make_run(tmp_path / "run", items))["failures"]
    assert len(failures["groups"]) == TOP_GROUPS
    assert failures["other"] == {
        "groups": 5,
        "items": 100 - sum(g["count"] for g in failures["groups"]),
    }
    # Equal counts are ordered by reason, so the report is the same on every run.
    reasons = [g["reason"] for g in failures["groups"]]
    assert reasons == sorted(reasons)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (
            "timeout bi-abcdefghijklmnopqrstuvw2 after 3600s",
            "timeout bi-zzzzzzzzzzzzzzzzzzzzzzz7 after 60s",
        ),
        (
            "request 123e4567-e89b-12d3-a456-426614174000 failed",
            "request 00000000-0000-0000-0000-00000000abcd failed",
        ),
        ("no key s3://b/in/1.jpg", "no key s3://other-bucket/deep/path/2.png"),
        ("bad header at 0x7ffdeadbeef", "bad header at 0x1"),
        (
            "digest 9f86d081884c7d659a2feaa0c55ad015 mismatch",
            "digest 2c26b46b68ffc68ff99b453c1d304134 mismatch",
        ),
        ("read   /opt/ml/model/code/a.py\tline 12", "read /opt/ml/model/code/b.py line 9"),
        ("https://example.com/x?y=1 refused", "https://example.org/ refused"),
        ("took 1.5 s of 12345678 ms", "took 22 s of 7 ms"),
    ],
)
def test_normalise_merges_variants(one: str, other: str) -> None:
    merged = normalise(pa.array([one, other])).to_pylist()
    assert merged[0] == merged[1], merged


def test_normalise_keeps_what_tells_reasons_apart_and_cuts_long_ones() -> None:
    a, b, long, empty = normalise(
        pa.array(
            [
                "Unsupported content type image/jpeg",
                "Unsupported content type text/csv",
                "x" * 1000,
                "   ",
            ]
        )
    ).to_pylist()
    assert a != b
    assert len(long) == REASON_MAX and long.endswith("…")
    assert empty == "(no error message)"


def test_custom_attributes_and_credentials_never_reach_the_report(tmp_path: Path) -> None:
    row_value = "user=alice;session=row-secret-77"
    items = [
        Item(FAILED, error=f"model echoed {RUN_ATTRIBUTES} back"),
        Item(
            FAILED, submitted=1, error=f"bad attributes {row_value}!", custom_attributes=row_value
        ),
        Item(REJECTED, submitted=2, error="auth AKIAIOSFODNN7EXAMPLE password=hunter2 denied"),
        Item(SUCCEEDED, submitted=3, custom_attributes=row_value),
    ]
    report = build_report(make_run(tmp_path / "run", items, RUN_ATTRIBUTES))
    outputs = [json.dumps(report), render_markdown(report), render_html(report)]
    console = Console(file=io.StringIO(), width=200)
    render_report(console, report)
    outputs.append(console.file.getvalue())
    for text in outputs:
        for secret in ("run-wide-attr-9f1c", "row-secret-77", "AKIAIOSFODNN7EXAMPLE", "hunter2"):
            assert secret not in text
    reasons = {g["reason"] for g in report["failures"]["groups"]}
    assert "model echoed <custom-attributes> back" in reasons
    assert "bad attributes <custom-attributes>!" in reasons


def test_json_round_trips(mixed_report: dict) -> None:
    text = json.dumps(mixed_report, allow_nan=False)
    assert json.loads(text) == mixed_report


def test_renderings(mixed_report: dict) -> None:
    console = Console(file=io.StringIO(), width=100)
    render_report(console, mixed_report)
    text = console.file.getvalue()
    assert "succeeded" in text and "p99" in text and "top failure reasons" in text
    markdown = render_markdown(mixed_report)
    assert "| state | items | share |" in markdown
    assert re.search(r"^\| --- \| ---: \| ---: \|$", markdown, re.M)
    for group in mixed_report["failures"]["groups"]:
        assert f"| `{group['reason']}` |" in markdown
    html = render_html(mixed_report)
    assert html.count("<svg") == 3 and "no data" not in html
    # Self-contained: nothing to fetch, nothing to run.
    assert not re.search(r"<script|<link|<img|@import|url\(|\bsrc=|\bhref=", html)


def test_html_escapes_what_the_endpoint_wrote(tmp_path: Path) -> None:
    items = [Item(FAILED, error="<script>alert('x')</script> & | `pipe`")]
    report = build_report(make_run(tmp_path / "run", items))
    html = render_html(report)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "\\|" in render_markdown(report)


def test_empty_run(tmp_path: Path) -> None:
    report = build_report(make_run(tmp_path / "run", [Item(), Item()]))
    assert report["counts"]["pending"] == 2 and report["items"] == 2
    assert report["timings"]["wall_s"] is None and report["timings"]["finished"] == 0
    assert report["latency_s"] == {
        "count": 0,
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
        "mean": None,
    }
    assert report["completions"] is None and report["latency_histogram"] is None
    assert report["failures"] == {"items": 0, "groups": [], "other": {"groups": 0, "items": 0}}
    html = render_html(report)
    assert "<svg" not in html and html.count("no data") == 3
    render_markdown(report)
    render_report(Console(file=io.StringIO()), report)


def test_a_run_with_no_rows(tmp_path: Path) -> None:
    report = build_report(make_run(tmp_path / "run", []))
    assert report["items"] == 0 and sum(report["counts"].values()) == 0
    render_html(report)
    render_markdown(report)


def test_single_item(tmp_path: Path) -> None:
    report = build_report(make_run(tmp_path / "run", [Item(SUCCEEDED, took=2.5)]))
    assert report["latency_s"]["p50"] == report["latency_s"]["max"] == 2.5
    assert report["timings"]["wall_s"] == 2.5
    assert report["completions"]["series"]["succeeded"][-1] == 1
    assert sum(report["latency_histogram"]["counts"]) == 1
    assert render_html(report).count("<svg") == 2


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("report")(report_command)

    @app.command()
    def other() -> None:
        """Keeps typer from folding the app into its only command."""

    return app


def test_cli(mixed_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    app = _cli()
    result = runner.invoke(app, ["report", str(mixed_run), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == 400
    target = tmp_path / "out" / "report.html"
    result = runner.invoke(app, ["report", str(mixed_run), "-o", str(target)])
    assert result.exit_code == 0 and target.read_text().startswith("<!DOCTYPE html>")
    result = runner.invoke(app, ["report", str(mixed_run), "-f", "markdown"])
    assert result.stdout.startswith("# bulkinvoke report")
    result = runner.invoke(app, ["report", str(mixed_run)])
    assert result.exit_code == 0 and "succeeded" in result.stdout
    result = runner.invoke(app, ["report", str(tmp_path / "nothing-here")])
    assert result.exit_code == 2 and "error" in result.output


def test_cli_help_describes_every_option() -> None:
    command = typer.main.get_command(_cli()).commands["report"]
    assert command.help
    for parameter in command.params:
        if isinstance(parameter, click.Option) and parameter.name != "help":
            assert parameter.help, parameter.name


finals = st.sampled_from([SUCCEEDED, FAILED, EXPIRED, REJECTED, State.SUBMITTED, State.PENDING])
items_strategy = st.lists(
    st.builds(
        Item,
        state=finals,
        submitted=st.floats(0, 10_000, allow_nan=False),
        took=st.floats(0, 5_000, allow_nan=False),
        error=st.one_of(st.none(), st.sampled_from(["boom 1", "boom 22", "bad bi-" + "a" * 24])),
        attempts=st.integers(1, 3),
    ),
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items_strategy)
def test_property_counts_and_percentiles(items: list[Item]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        report = build_report(make_run(Path(directory) / "run", items))
    assert sum(report["counts"].values()) == report["items"] == len(items)
    latency = report["latency_s"]
    assert latency["count"] == sum(i.state is SUCCEEDED for i in items)
    if latency["count"]:
        assert latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        assert sum(report["latency_histogram"]["counts"]) == latency["count"]
    failures = report["failures"]
    assert (
        sum(g["count"] for g in failures["groups"]) + failures["other"]["items"]
        == (failures["items"])
    )
    if report["completions"] is not None:
        total = sum(sum(v) for v in report["completions"]["series"].values())
        assert total == report["timings"]["finished"]
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_tiny_durations_and_amounts_are_plain_decimals() -> None:
    from bulkinvoke.reports.formatting import duration, significant

    assert duration(5.38879e-05) == "0.054 ms" and duration(0.004) == "4 ms"
    assert duration(0.5) == "500 ms" and duration(4.2) == "4.2 s"
    assert significant(0.00001234) == "0.000012" and significant(0.001) == "0.001"
