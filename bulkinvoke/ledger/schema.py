"""Events, their Parquet form (see docs/ARCHITECTURE.md) and the fold of events into attempts.

pyarrow and numpy are imported inside the functions: the CLI imports the core on every start.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bulkinvoke.errors import LedgerCorrupt
from bulkinvoke.ledger.files import BATCH_RECOVERY, COMPACTION_RECOVERY, EventFiles
from bulkinvoke.states import State

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

KEY = ("row", "attempt")
TIMESTAMPS = ("at", "submitted_at", "completed_at")


@dataclass(frozen=True, slots=True)
class Event:
    """One state change of one attempt; the optional fields carry only what it changes."""

    row: int
    attempt: int
    state: State
    at: float  # epoch seconds
    inference_id: str | None = None
    submitted_at: float | None = None
    completed_at: float | None = None
    output_location: str | None = None
    failure_location: str | None = None
    error: str | None = None
    retries: int | None = None
    throttles: int | None = None
    output_bytes: int | None = None

    def __post_init__(self) -> None:
        # A bad value found only at flush would stay in the buffer and fail every later flush,
        # so it is refused here, where the traceback points at its origin. One expression of
        # exact type tests, because the runner makes thousands of events a second.
        if not (
            type(self.row) is int
            and type(self.attempt) is int
            and 1 <= self.row < _INT64
            and 1 <= self.attempt < _INT32
            and type(self.state) is State
            and type(self.at) in _REAL
            and abs(self.at) < _SECONDS
            and (self.inference_id is None or type(self.inference_id) is str)
            and (
                self.submitted_at is None
                or (type(self.submitted_at) in _REAL and abs(self.submitted_at) < _SECONDS)
            )
            and (
                self.completed_at is None
                or (type(self.completed_at) in _REAL and abs(self.completed_at) < _SECONDS)
            )
            and (self.output_location is None or type(self.output_location) is str)
            and (self.failure_location is None or type(self.failure_location) is str)
            and (self.error is None or type(self.error) is str)
            and (self.retries is None or (type(self.retries) is int and 0 <= self.retries < _INT32))
            and (
                self.throttles is None
                or (type(self.throttles) is int and 0 <= self.throttles < _INT32)
            )
            and (
                self.output_bytes is None
                or (type(self.output_bytes) is int and 0 <= self.output_bytes < _INT64)
            )
        ):
            _refuse(self)


_INT32 = 2**31
_INT64 = 2**63
# Times are stored as int64 milliseconds; NaN fails the comparison too.
_SECONDS = 2**62 / 1000
_REAL = frozenset({int, float})
_FIELD_TYPES: tuple[tuple[str, frozenset[type]], ...] = (
    ("row", frozenset({int})),
    ("attempt", frozenset({int})),
    ("state", frozenset({State})),
    ("at", _REAL),
    ("inference_id", frozenset({str})),
    ("submitted_at", _REAL),
    ("completed_at", _REAL),
    ("output_location", frozenset({str})),
    ("failure_location", frozenset({str})),
    ("error", frozenset({str})),
    ("retries", frozenset({int})),
    ("throttles", frozenset({int})),
    ("output_bytes", frozenset({int})),
)
_REQUIRED = frozenset({"row", "attempt", "state", "at"})


def _refuse(event: Event) -> NoReturn:
    for name, kinds in _FIELD_TYPES:
        value = getattr(event, name)
        if type(value) not in kinds and not (value is None and name not in _REQUIRED):
            raise TypeError(f"Event.{name} cannot be {value!r} (a {type(value).__name__})")
    raise ValueError(
        f"{event} has a number out of range (rows and attempts count from 1; times must be finite)"
    )


EVENT_COLUMNS = tuple(name for name, _ in _FIELD_TYPES)


@functools.cache
def event_schema() -> pa.Schema:
    import pyarrow as pa

    ts = pa.timestamp("ms", tz="UTC")
    types = {
        "row": pa.int64(),
        "attempt": pa.int32(),
        "at": ts,
        "submitted_at": ts,
        "completed_at": ts,
        "retries": pa.int32(),
        "throttles": pa.int32(),
        "output_bytes": pa.int64(),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in EVENT_COLUMNS])


def events_to_table(events: Sequence[Event]) -> pa.Table:
    import pyarrow as pa

    schema = event_schema()
    arrays = []
    for field in schema:
        name = field.name
        if name == "state":
            values: list[object] = [e.state.value for e in events]
        elif name in TIMESTAMPS:
            raw = [getattr(e, name) for e in events]
            values = [None if v is None else round(v * 1000) for v in raw]
        else:
            values = [getattr(e, name) for e in events]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def fold(events: pa.Table) -> pa.Table:
    """One row per (row, attempt), sorted by both, in the events' order: the last value of each
    column that is not null (``state`` and ``at`` are never null, so they come from the last
    event)."""
    import numpy as np
    import pyarrow as pa

    if events.num_rows == 0:
        return events.combine_chunks()
    rows = events["row"].to_numpy()
    attempts = events["attempt"].to_numpy()
    # lexsort is stable, so each attempt's events keep their order.
    order = np.lexsort((attempts, rows))
    sorted_rows, sorted_attempts = rows[order], attempts[order]
    ends = run_ends(sorted_rows, sorted_attempts)
    group_of = np.cumsum(ends) - ends
    last = order[ends]
    columns: list[pa.Array | pa.ChunkedArray] = []
    for name in events.column_names:
        # take() on a chunked string column is several times slower than on a combined one.
        column = events[name].combine_chunks()
        if name == "row":
            columns.append(pa.array(sorted_rows[ends], type=column.type))
        elif name == "attempt":
            columns.append(pa.array(sorted_attempts[ends], type=column.type))
        elif column.null_count == 0:
            columns.append(column.take(last))
        else:
            valid = np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False)[order])
            groups = group_of[valid]
            final = np.ones(len(groups), dtype=bool)
            final[:-1] = groups[1:] != groups[:-1]
            picks = np.full(len(last), -1, dtype=np.int64)
            picks[groups[final]] = order[valid[final]]
            columns.append(column.take(pa.array(picks, mask=picks < 0)))
    return pa.Table.from_arrays(columns, schema=events.schema)


def run_ends(rows: np.ndarray, attempts: np.ndarray | None = None) -> np.ndarray:
    """Mask of the positions that end a run of equal keys in sorted key arrays."""
    import numpy as np

    ends = np.ones(len(rows), dtype=bool)
    np.not_equal(rows[1:], rows[:-1], out=ends[:-1])
    if attempts is not None:
        ends[:-1] |= attempts[1:] != attempts[:-1]
    return ends


def batch_bytes(table: pa.Table) -> pa.Buffer:
    """A b- file: small, written often, read once by compaction, so only cheap options: on
    ~100 events snappy without dictionaries takes half zstd's CPU for the same size."""
    return _to_parquet(
        table,
        compression="snappy",
        use_dictionary=False,
        write_statistics=False,
        write_page_checksum=True,
    )


def compaction_bytes(table: pa.Table) -> pa.Buffer:
    """A c- file, sorted by (row, attempt). Near-sorted integers and times shrink most with
    delta encoding; every other column gets a dictionary, which the writer gives up by itself
    for columns of unique values such as IDs and locations (zstd still takes their prefixes)."""
    import pyarrow.parquet as pq

    deltas = {"row", "output_bytes", *TIMESTAMPS}
    return _to_parquet(
        table,
        compression="zstd",
        use_dictionary=[n for n in table.column_names if n not in deltas],
        column_encoding={n: "DELTA_BINARY_PACKED" for n in table.column_names if n in deltas},
        sorting_columns=[pq.SortingColumn(0), pq.SortingColumn(1)],
        write_page_checksum=True,
    )


def plan_bytes(table: pa.Table) -> pa.Buffer:
    import pyarrow as pa

    encodings: dict[str, str] = {}
    for field in table.schema:
        if field.name in ("row", "line") and pa.types.is_integer(field.type):
            encodings[field.name] = "DELTA_BINARY_PACKED"
        elif field.name == "input_location" and pa.types.is_string(field.type):
            # Consecutive locations usually share all but their last characters.
            encodings[field.name] = "DELTA_BYTE_ARRAY"
    return _to_parquet(
        table,
        compression="zstd",
        use_dictionary=[n for n in table.column_names if n not in encodings],
        column_encoding=encodings,
        write_page_checksum=True,
    )


def _to_parquet(table: pa.Table, **options: Any) -> pa.Buffer:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def read_parquet(
    path: Path,
    columns: Sequence[str] | None,
    schema: pa.Schema | None,
    recovery: str,
    dictionary: Sequence[str] = (),
) -> pa.Table:
    """Read a ledger file; a file that cannot be read or does not match ``schema`` raises
    ``LedgerCorrupt`` naming it, with ``recovery`` appended. ``FileNotFoundError`` passes through
    (a concurrent compaction may have removed the file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(
            path, read_dictionary=list(dictionary) or None, page_checksum_verification=True
        )
        absent = [name for name in columns or () if name not in parquet.schema_arrow.names]
        if not absent:
            table = parquet.read(columns=list(columns) if columns is not None else None)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise LedgerCorrupt(f"{path} cannot be read ({exc}). {recovery}") from exc
    if absent and schema is None:
        raise ValueError(f"{path} has no column {absent[0]!r}")
    if absent:
        raise LedgerCorrupt(f"{path} does not have the ledger's column {absent[0]!r}. {recovery}")
    if schema is None:
        return table
    expected = pa.schema(
        [
            pa.field(f.name, pa.dictionary(pa.int32(), f.type) if f.name in dictionary else f.type)
            for f in (schema.field(n) for n in (columns or schema.names))
        ]
    )
    if table.schema.remove_metadata() != expected:
        try:
            table = table.select(expected.names).cast(expected)
        except (pa.ArrowException, KeyError, ValueError) as exc:
            raise LedgerCorrupt(
                f"{path} does not have the ledger's columns ({exc}). {recovery}"
            ) from exc
    return table


def checked_plan(plan: pa.Table) -> pa.Table:
    """The plan with int64 rows, sorted; a plan without unique rows numbered from 1 is refused."""
    import numpy as np
    import pyarrow as pa

    for name in ("row", "input_location"):
        if name not in plan.column_names:
            raise ValueError(f"the plan has no {name!r} column")
    rows = plan["row"]
    if not pa.types.is_integer(rows.type) or rows.null_count:
        raise ValueError("the plan's rows must be integers")
    plan = plan.set_column(plan.column_names.index("row"), "row", rows.cast(pa.int64()))
    values = plan["row"].to_numpy()
    if len(values) and not (np.diff(values) > 0).all():
        plan = plan.sort_by("row")
        values = plan["row"].to_numpy()
        if not (np.diff(values) > 0).all():
            raise ValueError("the plan's rows must be unique")
    if len(values) and values[0] < 1:
        raise ValueError("the plan's rows are numbered from 1")
    return plan


def listed_event_files(files: EventFiles) -> list[tuple[int, Path]]:
    """The files a reader reads, in order: the newest compaction, then the batches after it."""
    return ([files.compaction] if files.compaction else []) + files.batches


def read_event_files(
    files: EventFiles, columns: list[str] | None, dictionary: Sequence[str] = ()
) -> list[pa.Table]:
    """The tables of ``files``, in reading order (see ``listed_event_files``)."""
    schema = event_schema()
    return [
        read_parquet(
            path,
            columns,
            schema,
            COMPACTION_RECOVERY if path.name.startswith("c-") else BATCH_RECOVERY,
            dictionary,
        )
        for _, path in listed_event_files(files)
    ]


def concat_events(tables: list[pa.Table], columns: list[str] | None) -> pa.Table:
    import pyarrow as pa

    if tables:
        return pa.concat_tables(tables)
    schema = event_schema()
    return schema.empty_table() if columns is None else schema.empty_table().select(columns)
