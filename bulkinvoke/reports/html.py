"""The report as one self-contained HTML page: inline CSS and SVG charts drawn here, nothing
fetched (no scripts, fonts or stylesheets), so the file can be mailed or archived as it is."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from html import escape
from typing import TYPE_CHECKING

from bulkinvoke.reports import formatting as fmt
from bulkinvoke.states import State

if TYPE_CHECKING:
    from bulkinvoke.reports.document import Completions, Failures, Histogram, Report

COLOURS = {
    "succeeded": "#2e9e5b",
    "failed": "#d64541",
    "expired": "#e8912d",
    "rejected": "#8e5bc8",
    "submitted": "#2a9fb8",
    "submitting": "#d4b62a",
    "pending": "#a0a4ab",
}
HISTOGRAM_COLOUR = "#3b7dd8"
WIDTH, HEIGHT = 1140, 340
LEFT, RIGHT, TOP, BOTTOM = 72, 24, 56, 64
REASON_CHARS = 70
# A run with one bucket or one bin would otherwise draw a bar as wide as the chart.
BAR_MAX = 48
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
margin:0;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.about{color:#59636e;margin:0 0 16px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:20px}
.card{background:#fff;border:1px solid #d8dee4;border-radius:8px;padding:14px 16px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-weight:600;color:#59636e}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.s{white-space:nowrap}td.e{width:30%}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.bar{background:#eaeef2;height:8px;border-radius:4px;min-width:80px}
.bar i{display:block;height:8px;border-radius:4px}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
.chart{background:#fff;border:1px solid #d8dee4;border-radius:8px;margin:0 0 20px;padding:4px}
.chart svg{display:block;width:100%;height:auto}
.nodata{color:#59636e;text-align:center;padding:48px 0;margin:0}
.nodata b{display:block;color:#1f2328;margin-bottom:6px}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;fill:#1f2328}
svg .title{font-size:15px;font-weight:600}svg .muted{fill:#59636e}
"""


def render_html(report: Report) -> str:
    """The whole page, ready to write to a file."""
    run = report["run"]
    about = [fmt.items(report["items"])]
    named = (("endpoint", run["endpoint"]), ("manifest", run["manifest"]))
    about += [f"{key} <code>{escape(value)}</code>" for key, value in named if value]
    failures = report["failures"]
    body = [
        f"<h1>bulkinvoke report: <code>{escape(run['run_dir'])}</code></h1>",
        f"<p class=about>{', '.join(about)}</p>",
        f"<div class=grid>{_counts(report)}{_timings(report)}</div>",
        "<h2>Charts</h2>",
        _frame(
            "Items finished over time",
            _completions(report["completions"]),
            "no item has finished yet",
        ),
        _frame(
            "Latency of succeeded items",
            _histogram(report["latency_histogram"]),
            "no item has succeeded yet",
        ),
        _frame("Failures by reason", _failure_bars(failures), "no item has failed"),
        f"<h2>Failures ({fmt.items(failures['items'])})</h2>{_failure_table(failures)}",
    ]
    return (
        '<!DOCTYPE html>\n<html lang=en><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>bulkinvoke report: {escape(run['run_dir'])}</title><style>{_CSS}</style>"
        f"</head><body><main>{''.join(body)}</main></body></html>\n"
    )


def _counts(report: Report) -> str:
    total, rows = report["items"], []
    for state in State:
        n = report["counts"][state.value]
        width = 100 * n / total if total else 0
        rows.append(
            f"<tr><td>{_swatch(state.value)}{state.value}</td><td class=n>{fmt.number(n)}</td>"
            f"<td class=n>{fmt.share(n, total)}</td>"
            f"<td><div class=bar><i style='width:{width:.2f}%;"
            f"background:{COLOURS[state.value]}'></i></div></td></tr>"
        )
    return (
        "<div class=card><table><tr><th>state</th><th class=n>items</th><th class=n>share</th>"
        f"<th></th></tr>{''.join(rows)}<tr><th>total</th><th class=n>{fmt.number(total)}</th>"
        "<th></th><th></th></tr></table></div>"
    )


def _timings(report: Report) -> str:
    timings, latency = report["timings"], report["latency_s"]
    attempts, output = report["attempts"], report["output_bytes"]
    rows = [
        ("first submitted", fmt.moment(timings["first_submitted_at"])),
        ("last finished", fmt.moment(timings["last_finished_at"])),
        ("wall time", fmt.duration(timings["wall_s"])),
        ("finished", fmt.number(timings["finished"])),
        ("throughput", fmt.rate(timings["throughput_per_s"])),
        (
            "latency p50 / p90 / p99",
            " / ".join(fmt.duration(latency[k]) for k in ("p50", "p90", "p99")),
        ),
        ("latency max / mean", f"{fmt.duration(latency['max'])} / {fmt.duration(latency['mean'])}"),
        ("items tried more than once", fmt.number(attempts["retried_items"])),
        (
            "attempts / retries / throttled",
            " / ".join(fmt.number(attempts[k]) for k in ("total", "retries", "throttles")),
        ),
        ("output total / mean", f"{fmt.size(output['total'])} / {fmt.size(output['mean'])}"),
    ]
    cells = "".join(f"<tr><th>{k}</th><td class=n>{escape(v)}</td></tr>" for k, v in rows)
    return f"<div class=card><table>{cells}</table></div>"


def _swatch(state: str) -> str:
    return f"<span class=sw style='background:{COLOURS[state]}'></span>"


def _failure_table(failures: Failures) -> str:
    if not failures["groups"]:
        return "<div class=card><p>None.</p></div>"
    rows = "".join(
        f"<tr><td class=n>{fmt.number(g['count'])}</td><td class=s>{_swatch(g['state'])}"
        f"{g['state']}</td><td><code>{escape(g['reason'])}</code></td><td class=e>"
        f"{'<br>'.join(f'<code>{escape(e)}</code>' for e in g['examples'])}</td></tr>"
        for g in failures["groups"]
    )
    rest = fmt.other_line(failures, len(failures["groups"]))
    more = f"<p>{escape(rest)}</p>" if rest else ""
    return (
        "<div class=card><table><tr><th class=n>items</th><th>state</th><th>reason</th>"
        f"<th>examples</th></tr>{rows}</table>{more}</div>"
    )


def _frame(title: str, svg: str | None, empty: str) -> str:
    if svg is None:
        return f"<div class=chart><p class=nodata><b>{escape(title)}</b>no data: {empty}</p></div>"
    return f"<div class=chart>{svg}</div>"


def _ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    raw = max(top, 1) / count
    power = 10 ** math.floor(math.log10(raw))
    # Counts are whole: a step under 1 would only label fractions of an item.
    step = max(next(m * power for m in (1, 2, 5, 10) if m * power >= raw), 1)
    return [i * step for i in range(math.ceil(max(top, 1) / step) + 1)]


def _svg(height: int, title: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text class="title" x="{LEFT}" y="26">{escape(title)}</text>{"".join(parts)}</svg>'
    )


def _y_axis(top: float, label: str, height: int) -> tuple[list[str], float]:
    """Grid lines, tick labels and the axis title; returns them and the value at the top."""
    ticks = _ticks(top)
    plot = height - TOP - BOTTOM
    parts, lines = [], []
    for value in ticks:
        y = TOP + plot * (1 - value / ticks[-1])
        lines.append(f"M{LEFT} {y:.1f}H{WIDTH - RIGHT}")
        parts.append(
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{fmt.short(value)}</text>'
        )
    parts.insert(0, f'<path d="{" ".join(lines)}" stroke="#eaeef2" fill="none"/>')
    middle = TOP + plot / 2
    parts.append(
        f'<text class="muted" transform="translate(16 {middle:.0f}) rotate(-90)" '
        f'text-anchor="middle">{escape(label)}</text>'
    )
    return parts, ticks[-1]


def _x_label(text: str, height: int) -> str:
    centre = LEFT + (WIDTH - LEFT - RIGHT) / 2
    return (
        f'<text class="muted" x="{centre:.0f}" y="{height - 14}" text-anchor="middle">'
        f"{escape(text)}</text>"
    )


def _legend(names: list[str]) -> str:
    """Swatches and names at the top right, level with the title."""
    parts, x = [], WIDTH - RIGHT
    for name in reversed(names):
        # About 7 px a character at 12 px, plus the swatch and a gap.
        x -= 7 * len(name) + 32
        parts.append(
            f'<rect x="{x}" y="16" width="11" height="11" rx="2" fill="{COLOURS[name]}"/>'
            f'<text x="{x + 16}" y="26">{name}</text>'
        )
    return "".join(parts)


def _completions(series: Completions | None) -> str | None:
    if series is None:
        return None
    step, count = series["bucket_s"], series["buckets"]
    shown = [name for name, values in series["series"].items() if sum(values)]
    totals = [sum(series["series"][n][i] for n in shown) for i in range(count)]
    parts, top = _y_axis(max(totals, default=0), f"items per {fmt.span(step)}", HEIGHT)
    start = datetime.fromisoformat(series["start"])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / count
    bar = min(slot * 0.84, BAR_MAX)
    every = math.ceil(count / 10)
    for i in range(count):
        x, base = LEFT + i * slot, float(HEIGHT - BOTTOM)
        when = _clock(start + timedelta(seconds=round(i * step, 3)), step)
        for name in shown:
            value = series["series"][name][i]
            if value:
                h = plot_h * value / top
                base -= h
                parts.append(
                    f'<rect x="{x + (slot - bar) / 2:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                    f'height="{h:.1f}" fill="{COLOURS[name]}"><title>{when} {name}: '
                    f"{fmt.number(value)}</title></rect>"
                )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{HEIGHT - BOTTOM + 18}" '
                f'text-anchor="middle">{when}</text>'
            )
    parts.append(_legend(shown))
    parts.append(_x_label(f"time (UTC) from {start:%Y-%m-%d %H:%M:%S}", HEIGHT))
    return _svg(HEIGHT, "Items finished over time", parts)


def _clock(when: datetime, step: float) -> str:
    """A bucket's start, as precise as its width needs; hour-wide buckets mean a run of days."""
    if step < 1:
        return f"{when:%H:%M:%S}.{when.microsecond // 100_000}"
    if step < 3600:
        return when.strftime("%H:%M:%S" if step < 60 else "%H:%M")
    return when.strftime("%m-%d %H:%M" if step < 86400 else "%Y-%m-%d")


def _histogram(histogram: Histogram | None) -> str | None:
    if histogram is None:
        return None
    edges, counts = histogram["edges"], histogram["counts"]
    parts, top = _y_axis(max(counts), "succeeded items", HEIGHT)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(counts)
    bar = min(slot - 2, BAR_MAX)
    every = math.ceil(len(edges) / 10)
    for i, value in enumerate(counts):
        x = LEFT + i * slot
        if value:
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x + (slot - bar) / 2:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" '
                f'width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{HISTOGRAM_COLOUR}"><title>{fmt.duration(edges[i])} to '
                f"{fmt.duration(edges[i + 1])}: {fmt.number(value)}</title></rect>"
            )
    # A single bin is drawn narrow in the middle, so its label goes there, not at its edges.
    ticks = [(LEFT + i * slot, edges[i]) for i in range(0, len(edges), every)]
    for x, edge in ticks if len(counts) > 1 else [(LEFT + plot_w / 2, edges[0])]:
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" '
            f'text-anchor="middle">{fmt.duration(edge)}</text>'
        )
    scale = "log scale" if histogram["scale"] == "log" else "linear scale"
    parts.append(_x_label(f"latency, submitted to output written ({scale})", HEIGHT))
    return _svg(HEIGHT, "Latency of succeeded items", parts)


def _failure_bars(failures: Failures) -> str | None:
    groups = failures["groups"]
    if not groups:
        return None
    row, label_w = 26, 540
    height = TOP + row * len(groups) + 50
    most = max(g["count"] for g in groups)
    ticks = _ticks(most)
    left, right = LEFT + label_w, WIDTH - RIGHT - 70
    scale = (right - left) / ticks[-1]
    grid = " ".join(f"M{left + t * scale:.1f} {TOP}V{height - 50}" for t in ticks)
    parts = [f'<path d="{grid}" stroke="#eaeef2" fill="none"/>']
    for t in ticks:
        parts.append(
            f'<text x="{left + t * scale:.1f}" y="{height - 32}" text-anchor="middle">'
            f"{fmt.short(t)}</text>"
        )
    for i, group in enumerate(groups):
        y = TOP + i * row
        reason = group["reason"]
        short = reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"
        parts.append(
            f'<text x="{left - 10}" y="{y + 17}" text-anchor="end"><title>{escape(reason)}'
            f"</title>{escape(short)}</text>"
            f'<rect x="{left}" y="{y + 4}" width="{max(group["count"] * scale, 1):.1f}" '
            f'height="{row - 8}" rx="2" fill="{COLOURS[group["state"]]}"><title>'
            f"{group['state']}: {fmt.number(group['count'])}</title></rect>"
            f'<text x="{left + group["count"] * scale + 6:.1f}" y="{y + 17}">'
            f"{fmt.number(group['count'])}</text>"
        )
    parts.append(_legend(sorted({g["state"] for g in groups}, key=list(COLOURS).index)))
    parts.append(
        f'<text class="muted" x="{(left + right) / 2:.0f}" y="{height - 10}" '
        f'text-anchor="middle">items</text>'
    )
    return _svg(height, "Failures by reason", parts)
