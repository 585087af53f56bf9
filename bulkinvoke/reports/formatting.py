"""How the report's figures read to people: counts, shares, durations, sizes, rates, and the
one-line summaries of timings and attempts. Shared by the terminal, Markdown and HTML forms."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bulkinvoke.reports.document import Failures, Report


def number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def items(count: int) -> str:
    return f"{number(count)} item{'s' * (count != 1)}"


def share(count: int, total: int) -> str:
    return f"{100 * count / total:.1f}%" if total else "-"


def significant(number: float, digits: int = 2) -> str:
    """``number`` with ``digits`` significant digits, in plain decimals: 0.000012, not 1.2e-05."""
    if number <= 0 or not math.isfinite(number):
        return f"{number:g}"
    places = max(0, digits - 1 - math.floor(math.log10(number)))
    text = f"{number:.{places}f}"
    return text.rstrip("0").rstrip(".") if places else text


def duration(seconds: float | None) -> str:
    """A duration as people say it: 0.054 ms, 850 ms, 4.2 s, 3m 05s, 2h 10m, 3d 4h."""
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{significant(seconds * 1000)} ms"
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


def timings_line(report: Report) -> str:
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


def attempts_line(report: Report) -> str:
    attempts, output = report["attempts"], report["output_bytes"]
    return (
        f"{number(attempts['retried_items'])} items tried more than once, "
        f"{number(attempts['total'])} attempts, {number(attempts['retries'])} retries, "
        f"{number(attempts['throttles'])} throttled · output {size(output['total'])}"
        + (f" (mean {size(output['mean'])})" if output["mean"] is not None else "")
    )


def other_line(failures: Failures, shown: int) -> str | None:
    """What the listed groups leave out, or None when they are all there is."""
    groups = max(len(failures["groups"]) - shown, 0) + failures["other"]["groups"]
    if not groups:
        return None
    items = failures["items"] - sum(g["count"] for g in failures["groups"][:shown])
    return f"… and {number(groups)} more reasons ({number(items)} items)"
