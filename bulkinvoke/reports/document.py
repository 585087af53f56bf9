"""The report's shape: what ``report --format json`` prints (``report_version`` says which shape)
and what every renderer reads, as TypedDicts so that a key misspelt on either side is a type
error. Times are ISO 8601 strings in UTC; ``None`` where a run has no such figure yet."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypedDict

if TYPE_CHECKING:
    from bulkinvoke.scale.shards import ShardSummary


class RunInfo(TypedDict):
    run_dir: str
    endpoint: str | None
    manifest: str | None
    created_at: str | None
    shards: ShardSummary | None


class Timings(TypedDict):
    first_submitted_at: str | None
    last_finished_at: str | None
    wall_s: float | None
    finished: int
    throughput_per_s: float | None


LatencyFigure = Literal["p50", "p90", "p99", "max", "mean"]
LATENCY_FIGURES: tuple[LatencyFigure, ...] = ("p50", "p90", "p99", "max", "mean")


class Latency(TypedDict):
    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    mean: float | None


class Attempts(TypedDict):
    retried_items: int
    total: int
    retries: int
    throttles: int


class OutputBytes(TypedDict):
    total: int
    mean: float | None


class FailureGroup(TypedDict):
    reason: str
    state: str
    count: int
    examples: list[str]


class OtherFailures(TypedDict):
    groups: int
    items: int


class Failures(TypedDict):
    items: int
    groups: list[FailureGroup]
    other: OtherFailures


class Completions(TypedDict):
    start: str
    bucket_s: float
    buckets: int
    # Items finished in each bucket, by final state.
    series: dict[str, list[int]]


class Histogram(TypedDict):
    scale: str  # "linear" or "log"
    edges: list[float]
    counts: list[int]


class Report(TypedDict):
    report_version: int
    run: RunInfo
    items: int
    counts: dict[str, int]
    timings: Timings
    latency_s: Latency
    attempts: Attempts
    output_bytes: OutputBytes
    failures: Failures
    completions: Completions | None
    latency_histogram: Histogram | None
