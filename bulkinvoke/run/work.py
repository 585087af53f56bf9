"""From the ledger's plan and records to the work of one session: calls to send, results to await.

:class:`CallFactory` turns a manifest row and an attempt number into the exact call to send, with
the run's options and the row's own overrides; :func:`load_run_state` sorts every row of a run by
what is left to do for it.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bulkinvoke.calls.invoker import Call
from bulkinvoke.manifest.ids import inference_id, output_filename
from bulkinvoke.request_options import OPTION_NAMES, RequestOptions
from bulkinvoke.results.collector import Watch
from bulkinvoke.s3uri import parse_s3_uri
from bulkinvoke.states import State

if TYPE_CHECKING:
    import pyarrow as pa

    from bulkinvoke.ledger.store import Ledger
    from bulkinvoke.run.definition import RunOptions
    from bulkinvoke.run.doubt import Doubt

# The service's defaults, which apply when a call does not set them.
DEFAULT_REQUEST_TTL_SECONDS = 21600
DEFAULT_INVOCATION_TIMEOUT_SECONDS = 900
# How long past the endpoint's own deadlines a result may still take to appear in S3.
EXPIRY_GRACE_SECONDS = 300


class CallFactory:
    def __init__(self, plan: pa.Table, options: RunOptions) -> None:
        self._options = options
        self._rows: list[int] = plan.column("row").to_pylist()
        self._locations: list[str] = plan.column("input_location").to_pylist()
        self._own_ids: list[str | None] | None = _non_null_column(plan, "inference_id")
        self._overrides = {
            name: values
            for name in OPTION_NAMES
            if (values := _non_null_column(plan, name)) is not None
        }

    def _index(self, row: int) -> int:
        index = bisect.bisect_left(self._rows, row)
        if index == len(self._rows) or self._rows[index] != row:
            raise KeyError(f"row {row} is not in the run's plan")
        return index

    def call(self, row: int, attempt: int = 1) -> Call:
        index = self._index(row)
        location = self._locations[index]
        own_id = self._own_ids[index] if self._own_ids is not None else None
        request = self._options.request
        if self._overrides:
            request = request.overridden_by(
                RequestOptions(**{name: values[index] for name, values in self._overrides.items()})
            )
        identifier = inference_id(
            self._options.id_namespace, self._options.endpoint, location, attempt, own_id
        )
        return Call(row, attempt, identifier, location, request)

    def first_calls(self, n: int) -> list[Call]:
        return [self.call(row) for row in self._rows[:n]]

    def expected_result_by(self, call: Call, submitted_at: float) -> float:
        """When an attempt with no output and no failure object counts as expired."""
        if self._options.expire_after is not None:
            return submitted_at + self._options.expire_after
        ttl = call.options.request_ttl_seconds or DEFAULT_REQUEST_TTL_SECONDS
        timeout = call.options.invocation_timeout_seconds or DEFAULT_INVOCATION_TIMEOUT_SECONDS
        return submitted_at + ttl + timeout + EXPIRY_GRACE_SECONDS


def _non_null_column(plan: pa.Table, name: str) -> list[Any] | None:
    if name not in plan.column_names or plan.column(name).null_count == plan.num_rows:
        return None
    values: list[Any] = plan.column(name).to_pylist()
    return values


@dataclass
class RunState:
    total: int
    counts: dict[State, int]
    work: list[Call] = field(default_factory=list)
    in_doubt: list[Call] = field(default_factory=list)
    watches: list[Watch] = field(default_factory=list)
    # Where this run's outputs land (s3://bucket/prefix/), learned from an accepted call.
    output_directory: str | None = None
    # Where its failures land: an accepted call's failure location with the stem of its output
    # file name as "{}" (the service names a failure after the output file).
    failure_template: str | None = None
    # When each in-doubt attempt's intent was written (epoch seconds).
    in_doubt_since: dict[tuple[int, int], float] = field(default_factory=dict)
    # In-doubt attempts watched rather than sent again (``--in-doubt wait``).
    doubts: list[Doubt] = field(default_factory=list)
    # Of the in-doubt attempts settled before the session: found finished, and sent again.
    in_doubt_found: int = 0
    in_doubt_resent: int = 0
    # Of the attempts with a result: the latest acceptance, and the longest time from
    # acceptance to result. A result for a call accepted after an in-doubt one tells that the
    # endpoint's queue has moved past it.
    results_horizon: float = 0.0
    longest_latency: float = 0.0
    # Expired attempts, watched with no deadline: an endpoint that was only slow may have
    # written their results since, and each one found is a call not paid for twice.
    expired: list[Watch] = field(default_factory=list)
    # (row, reason) of rows refused by manifest validation that the ledger does not show as
    # rejected yet: a crash came between creating the run and recording them.
    unrecorded_rejections: list[tuple[int, str]] = field(default_factory=list)

    def expected_output(self, call: Call) -> str | None:
        if self.output_directory is None:
            return None
        return self.output_directory + output_filename(call.inference_id)

    def expected_failure(self, call: Call) -> str | None:
        if self.failure_template is None:
            return None
        return self.failure_template.format(_stem(call.inference_id))


def _stem(inference_id: str) -> str:
    return output_filename(inference_id).rpartition(".")[0]


def _failure_template(failure: str, inference_id: str) -> str | None:
    directory, _, name = failure.rpartition("/")
    stem = _stem(inference_id)
    if stem not in name:
        return None
    return directory + "/" + name.replace("{", "{{").replace("}", "}}").replace(stem, "{}", 1)


def invalid_reasons(latest: pa.Table) -> list[str | None]:
    """Why manifest validation refused each row of ``Ledger.latest``'s table (None: valid)."""
    if "invalid_reason" not in latest.column_names:  # the manifest had no invalid row
        return [None] * latest.num_rows
    reasons: list[str | None] = latest.column("invalid_reason").to_pylist()
    return reasons


def load_run_state(ledger: Ledger, factory: CallFactory) -> RunState:
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = [
        "row",
        "attempt",
        "state",
        "inference_id",
        "output_location",
        "failure_location",
        "submitted_at",
        "completed_at",
        "at",
    ]
    latest = ledger.latest()
    invalid = invalid_reasons(latest)
    latest = latest.select(columns)

    def seconds(name: str) -> list[float | None]:
        column = pc.cast(pc.cast(latest.column(name), pa.timestamp("ms")), pa.int64())
        values: list[float | None] = pc.divide(column, 1000.0).to_pylist()
        return values

    submitted_at, completed_at, event_at = map(seconds, ["submitted_at", "completed_at", "at"])
    state = RunState(total=latest.num_rows, counts={})
    counts: dict[State, int] = {}
    for index, (row, attempt, status, identifier, output, failure, reason) in enumerate(
        zip(
            latest.column("row").to_pylist(),
            latest.column("attempt").to_pylist(),
            latest.column("state").to_pylist(),
            latest.column("inference_id").to_pylist(),
            latest.column("output_location").to_pylist(),
            latest.column("failure_location").to_pylist(),
            invalid,
            strict=True,
        )
    ):
        current = State(status)
        if reason is not None and current is State.PENDING:
            state.unrecorded_rejections.append((row, reason))
            current = State.REJECTED
        if state.output_directory is None and output:
            target = parse_s3_uri(output)
            state.output_directory = f"s3://{target.bucket}/{target.directory}"
        if state.failure_template is None and failure and identifier:
            state.failure_template = _failure_template(failure, identifier)
        sent, done = submitted_at[index], completed_at[index]
        if sent is not None and done is not None:
            state.results_horizon = max(state.results_horizon, sent)
            state.longest_latency = max(state.longest_latency, done - sent)
        counts[current] = counts.get(current, 0) + 1
        if current is State.PENDING:
            state.work.append(factory.call(row, attempt or 1))
        elif current is State.SUBMITTING:
            state.in_doubt.append(factory.call(row, attempt))
            state.in_doubt_since[(row, attempt)] = event_at[index] or 0.0
        elif current is State.SUBMITTED or (current is State.EXPIRED and output):
            call = factory.call(row, attempt)
            sent = sent or 0.0
            watch = Watch(
                row,
                attempt,
                call.inference_id,
                output,
                failure,
                sent,
                factory.expected_result_by(call, sent) if current is State.SUBMITTED else math.inf,
                call.options.custom_attributes,
            )
            (state.watches if current is State.SUBMITTED else state.expired).append(watch)
    state.counts = counts
    return state
