"""The report of a run, from its ledger, as a plain dict ready for ``json.dumps`` (docs/REPORT.md).

Whole columns at a time (pyarrow, numpy): a million items report in a few seconds. Custom
attributes and credentials never reach the report: errors are scrubbed of both before grouping.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkinvoke.redaction import CUSTOM_ATTRIBUTES_PLACEHOLDER, SECRET_PATTERNS
from bulkinvoke.states import FINAL_STATES, State

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from bulkinvoke.reports.document import (
        Completions,
        FailureGroup,
        Failures,
        Histogram,
        Latency,
        Report,
        Timings,
    )

REPORT_VERSION = 1
TOP_GROUPS = 20
EXAMPLES_PER_GROUP = 3
REASON_MAX = 200
TARGET_BUCKETS = 60
HISTOGRAM_BINS = 30
# Latencies spread over more than this factor read better on a log axis.
LOG_SCALE_RATIO = 20.0
NO_MESSAGE = "(no error message)"
_CODE = {state: code for code, state in enumerate(State)}
_FINAL = tuple(s for s in State if s in FINAL_STATES)
_UNSUCCESSFUL = tuple(s for s in _FINAL if s is not State.SUCCEEDED)
# Bucket widths that make readable axis labels, in seconds.
_NICE_STEPS: tuple[float, ...] = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900)
_NICE_STEPS += (1800, 3600, 7200, 10800, 21600, 43200, 86400)

# (RE2 pattern, replacement), applied in order after the secrets are out (so that no rule can keep
# a piece of one); pure numbers go before hex so that "12345678" and "12" both become <n>.
_NORMALISE = (
    (r"\bbi-[a-z2-7]{24}\b", "<inference-id>"),
    (r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "<uuid>"),
    (r"(?i)\bs3://[^\s'\"<>,;)]+", "<location>"),
    (r"(?i)\bhttps?://[^\s'\"<>,;)]+", "<url>"),
    (r"[\w.=+-]*/[\w.=+-]+/[\w.=+/-]*", "<path>"),
    (r"\b[\w.=+-]+/[\w=+-]+\.[A-Za-z0-9]{1,8}\b", "<path>"),
    (r"\b\d+(?:\.\d+)?\b", "<n>"),
    (r"(?i)\b(?:0x[0-9a-f]+|[0-9a-f]{8,})\b", "<hex>"),
    (r"\d+", "<n>"),
    (r"\s+", " "),
)


def build_report(
    run_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> Report:
    """The report of the run in ``run_dir``, from its ledger alone (no AWS calls, no lock). A
    list of run directories (the shards of one run) gives the report of their union
    (``build_merged_report``)."""
    import pyarrow.parquet as pq

    from bulkinvoke.ledger.files import PLAN_NAME
    from bulkinvoke.ledger.store import Ledger
    from bulkinvoke.scale.shards import shard_summary

    if not isinstance(run_dir, str | os.PathLike):
        return build_merged_report(run_dir)

    run_dir = Path(run_dir)
    with Ledger.open(run_dir, writable=False) as ledger:
        plan_names = pq.read_schema(run_dir / PLAN_NAME).names
        wanted = ["input_location", "custom_attributes"]
        table = ledger.latest([name for name in wanted if name in plan_names])
        config = ledger.config
    report = summarise(table, config, run_dir)
    report["run"]["shards"] = shard_summary([config])
    return report


def summarise(table: pa.Table, config: dict[str, Any], run_dir: str | os.PathLike[str]) -> Report:
    """The report of a ``Ledger.latest`` table (with ``input_location`` among its plan columns)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    codes = pc.index_in(table["state"], value_set=pa.array([s.value for s in State]))
    state = codes.to_numpy(zero_copy_only=False).astype(np.int8)
    tally = np.bincount(state, minlength=len(State))
    submitted, completed, at = (_seconds(table[n]) for n in ("submitted_at", "completed_at", "at"))
    final = np.isin(state, [_CODE[s] for s in _FINAL])
    finished_at = np.where(np.isnan(completed) & final, at, completed)
    succeeded = state == _CODE[State.SUCCEEDED]
    latency = (completed - submitted)[succeeded]
    latency = latency[~np.isnan(latency)]
    output_bytes = table["output_bytes"]
    attempts = table["attempt"].to_numpy(zero_copy_only=False)
    options = config.get("options") or {}
    window = _window(submitted, finished_at)
    return {
        "report_version": REPORT_VERSION,
        "run": {
            "run_dir": str(run_dir),
            "endpoint": options.get("endpoint"),
            "manifest": (config.get("manifest") or {}).get("source"),
            "created_at": _iso(config.get("created_at")),
            "shards": None,
        },
        "items": table.num_rows,
        "counts": {s.value: int(tally[_CODE[s]]) for s in State},
        "timings": _timings(window, finished_at),
        "latency_s": _latency(latency),
        "attempts": {
            "retried_items": int((attempts > 1).sum()),
            "total": int(attempts.sum()),
            "retries": _int_sum(table["retries"]),
            "throttles": _int_sum(table["throttles"]),
        },
        "output_bytes": {
            "total": _int_sum(output_bytes),
            "mean": _round(pc.mean(output_bytes).as_py()),
        },
        "failures": _failures(
            table, state, (options.get("request") or {}).get("custom_attributes")
        ),
        "completions": _completions(window, finished_at, state),
        "latency_histogram": _histogram(latency),
    }


def _seconds(column: pa.ChunkedArray) -> np.ndarray:
    """Epoch seconds as float64, NaN where null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    seconds: np.ndarray = pc.divide(pc.cast(column, pa.int64()), 1000.0).to_numpy(
        zero_copy_only=False
    )
    return seconds


def _round(value: float | None, digits: int = 3) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _iso(seconds: float | None) -> str | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return _timestamp(seconds)


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _int_sum(column: pa.ChunkedArray) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(column).as_py() or 0)


def _window(submitted: np.ndarray, finished_at: np.ndarray) -> tuple[float, float] | None:
    """First submission to last finish; None until an item has been submitted and finished."""
    import numpy as np

    if np.isnan(submitted).all():
        return None
    start = float(np.nanmin(submitted))
    after = finished_at[finished_at >= start]
    return (start, float(after.max())) if after.size else None


def _timings(window: tuple[float, float] | None, finished_at: np.ndarray) -> Timings:
    if window is None:
        return {
            "first_submitted_at": None,
            "last_finished_at": None,
            "wall_s": None,
            "finished": 0,
            "throughput_per_s": None,
        }
    start, end = window
    finished = int(((finished_at >= start) & (finished_at <= end)).sum())
    wall = end - start
    return {
        "first_submitted_at": _iso(start),
        "last_finished_at": _iso(end),
        "wall_s": _round(wall),
        "finished": finished,
        "throughput_per_s": _round(finished / wall) if wall > 0 else None,
    }


def _latency(latency: np.ndarray) -> Latency:
    import numpy as np

    if not latency.size:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    p50, p90, p99 = np.percentile(latency, [50, 90, 99])
    return {
        "count": int(latency.size),
        "p50": _round(p50),
        "p90": _round(p90),
        "p99": _round(p99),
        "max": _round(latency.max()),
        "mean": _round(latency.mean()),
    }


def _scrub(errors: pa.ChunkedArray, run_value: str | None, row_values: list[Any]) -> pa.Array:
    """Errors without custom attributes or credentials. A failure object is the model's own text
    and may echo the request, so the values are taken out even if no call ever logged them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = pc.fill_null(errors, "").combine_chunks()
    if run_value:
        texts = pc.replace_substring(
            texts, pattern=run_value, replacement=CUSTOM_ATTRIBUTES_PLACEHOLDER
        )
    if any(row_values):
        # Per-row values can all differ, so no single vectorised replace covers them.
        texts = pa.array(
            [
                t.replace(v, CUSTOM_ATTRIBUTES_PLACEHOLDER) if v else t
                for t, v in zip(texts.to_pylist(), row_values, strict=True)
            ],
            pa.string(),
        )
    for pattern, replacement in SECRET_PATTERNS:
        texts = pc.replace_substring_regex(texts, pattern=pattern, replacement=replacement)
    return texts


def normalise(messages: pa.Array) -> pa.Array:
    """Error messages with what varies from item to item (IDs, locations, numbers) replaced by
    placeholders, whitespace collapsed and cut to ``REASON_MAX`` characters."""
    import pyarrow.compute as pc

    for pattern, replacement in _NORMALISE:
        messages = pc.replace_substring_regex(messages, pattern=pattern, replacement=replacement)
    messages = pc.utf8_trim_whitespace(messages)
    cut = pc.binary_join_element_wise(pc.utf8_slice_codeunits(messages, 0, REASON_MAX - 1), "…", "")
    messages = pc.if_else(pc.greater(pc.utf8_length(messages), REASON_MAX), cut, messages)
    return pc.if_else(pc.equal(messages, ""), NO_MESSAGE, messages)


def _failures(table: pa.Table, state: np.ndarray, run_value: str | None) -> Failures:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = np.isin(state, [_CODE[s] for s in _UNSUCCESSFUL])
    picked = pa.array(mask)
    errors = table["error"].filter(picked)
    row_values: list[Any] = []
    if "custom_attributes" in table.column_names:
        overrides = table["custom_attributes"].filter(picked)
        if overrides.null_count < len(overrides):
            row_values = overrides.to_pylist()
    texts = _scrub(errors, run_value, row_values)
    # Normalise each distinct message once: many items share the few reasons a run fails for.
    distinct = pc.unique(texts)
    reasons = normalise(distinct)
    reason_set = pc.unique(reasons)
    reason_set = reason_set.take(pc.sort_indices(reason_set))
    reason_of_text = pc.index_in(reasons, value_set=reason_set).to_numpy(zero_copy_only=False)
    text_index = pc.index_in(texts, value_set=distinct).to_numpy(zero_copy_only=False)
    keys = reason_of_text[text_index].astype(np.int64) * len(State) + state[mask]
    groups, inverse, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    # Largest first; among equals by reason, then state: the order never depends on hashing.
    ranking = np.lexsort((groups, -sizes))
    locations = table["input_location"].filter(picked)
    by_group = np.argsort(inverse, kind="stable")
    starts = np.cumsum(sizes) - sizes
    listed: list[FailureGroup] = []
    for g in ranking[:TOP_GROUPS]:
        reason_code, state_code = divmod(int(groups[g]), len(State))
        examples = by_group[starts[g] : starts[g] + EXAMPLES_PER_GROUP]
        listed.append(
            {
                "reason": reason_set[reason_code].as_py(),
                "state": list(State)[state_code].value,
                "count": int(sizes[g]),
                "examples": locations.take(pa.array(examples, pa.int64())).to_pylist(),
            }
        )
    rest = ranking[TOP_GROUPS:]
    return {
        "items": int(mask.sum()),
        "groups": listed,
        "other": {"groups": len(rest), "items": int(sizes[rest].sum())},
    }


def _bucket_width(wall: float) -> float:
    wanted = wall / TARGET_BUCKETS
    for step in _NICE_STEPS:
        if step >= wanted:
            return float(step)
    return float(86400 * math.ceil(wanted / 86400))


def _completions(
    window: tuple[float, float] | None, finished_at: np.ndarray, state: np.ndarray
) -> Completions | None:
    import numpy as np

    if window is None:
        return None
    start, end = window
    step = _bucket_width(end - start)
    # Bucket edges on multiples of the width read as round clock times.
    origin = round(math.floor(start / step) * step, 3)
    count = int((end - origin) // step) + 1
    inside = (finished_at >= start) & (finished_at <= end)
    index = np.clip(((finished_at[inside] - origin) // step).astype(np.int64), 0, count - 1)
    states = state[inside]
    return {
        "start": _timestamp(origin),
        "bucket_s": step,
        "buckets": count,
        "series": {
            s.value: np.bincount(index[states == _CODE[s]], minlength=count).tolist()
            for s in _FINAL
        },
    }


def _histogram(latency: np.ndarray) -> Histogram | None:
    import numpy as np

    if not latency.size:
        return None
    low, high = float(latency.min()), float(latency.max())
    positive = latency[latency > 0]
    if positive.size and high / positive.min() >= LOG_SCALE_RATIO:
        scale = "log"
        raw = np.geomspace(positive.min(), high, HISTOGRAM_BINS + 1)
        edges = np.unique([float(f"{e:.4g}") for e in raw])
    else:
        scale = "linear"
        bins = HISTOGRAM_BINS if high > low else 1
        edges = np.unique(np.round(np.linspace(low, max(high, low + 0.001), bins + 1), 6))
    counts, _ = np.histogram(np.clip(latency, edges[0], edges[-1]), bins=edges)
    return {"scale": scale, "edges": edges.tolist(), "counts": counts.tolist()}


def build_merged_report(run_dirs: Sequence[str | os.PathLike[str]]) -> Report:
    """The report of the union of several runs (shards), as ``build_report`` makes for one."""
    from bulkinvoke.scale.shards import shard_summary
    from bulkinvoke.scale.union import merged_latest

    table, configs = merged_latest(run_dirs, ["input_location", "custom_attributes"])
    created = [c["created_at"] for c in configs if c.get("created_at") is not None]
    # Request options are equal across parts (checked), so the first config speaks for all.
    config = {**configs[0], "created_at": min(created, default=None)}
    report = summarise(table, config, ", ".join(map(str, run_dirs)))
    report["run"]["shards"] = shard_summary(configs)
    return report
