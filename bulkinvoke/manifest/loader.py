"""Read a manifest of inputs, in any supported format, and check every row against the API's limits.

Row-level problems are returned, all of them, rather than raised: the CLI lists them or, with
``--skip-invalid``, records the rows as rejected. Only a manifest that cannot be used at all
(missing, binary, empty, without a URI column...) raises ``ManifestError``. The formats are read in
``bulkinvoke.manifest.formats`` (and ``manifest_csv``); what follows is the same for every format.
"""

from __future__ import annotations

import math
import os
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.errors import ManifestError
from bulkinvoke.manifest.formats import list_prefix_rows, read_file
from bulkinvoke.manifest.rows import INTEGER_COLUMNS, OVERRIDE_COLUMNS, RawRows, shown
from bulkinvoke.request_options import (
    INPUT_LOCATION_MAX,
    RequestOptions,
    check_inference_id,
    check_input_location,
)

__all__ = [
    "PROBLEMS_SCHEMA",
    "TABLE_SCHEMA",
    "Duplicate",
    "Manifest",
    "ManifestError",
    "ManifestProblem",
    "problems_table",
    "read_manifest",
]

TABLE_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("line", pa.int64()),
        ("input_location", pa.string()),
        ("content_type", pa.string()),
        ("accept", pa.string()),
        ("custom_attributes", pa.string()),
        ("inference_id", pa.string()),
        ("request_ttl_seconds", pa.int32()),
        ("invocation_timeout_seconds", pa.int32()),
    ]
)
PROBLEMS_SCHEMA = TABLE_SCHEMA.append(pa.field("invalid_reason", pa.string()))

# Matches only what check_input_location accepts (printable ASCII, a bucket, then a non-empty key;
# the length is checked apart), so most rows pass with one match and only the rest pay for a reason.
_VALID_LOCATION = re.compile(r"(?:s3|https)://[ -.0-~]+/[ -~]+")
# Spreadsheets write whole numbers as "300.0"; more digits than this cannot be in range anyway.
_WHOLE_NUMBER = re.compile(r"([+-]?[0-9]{1,30})(?:\.0*)?")
# Up to this many distinct values, an override column is checked value by value, not row by row.
_FEW_VALUES = 4096


class _NotWholeError(ValueError):
    pass


@dataclass(frozen=True)
class ManifestProblem:
    """Why one manifest row cannot be sent."""

    source: str
    line: int
    reason: str
    row: int | None = None
    input_location: str | None = None
    # What ``line`` counts: "line" in text files, "row" in Parquet, "entry" in a ManifestFile,
    # "key" in an S3 prefix listing.
    unit: str = "line"

    def __str__(self) -> str:
        place = str(self.line) if self.unit == "line" else f"{self.unit} {self.line}"
        return f"{self.source}:{place}: {self.reason}"


@dataclass(frozen=True)
class Duplicate:
    """A row whose input_location an earlier row already has; only the first is sent."""

    row: int
    first_row: int
    input_location: str


@dataclass
class Manifest:
    """A manifest read and checked: the rows to send, and what was refused or dropped."""

    source: str
    fingerprint: str
    table: pa.Table
    problems: list[ManifestProblem]
    duplicates: list[Duplicate]
    # With --stage: the records' columns other than the payload, one row per manifest row in
    # order (kept as records.parquet beside the plan, and joined by the export).
    record_columns: pa.Table | None = None

    @property
    def row_count(self) -> int:
        # Every row read is exactly one of: in the table, refused (one problem each), a duplicate.
        rows: int = self.table.num_rows + len(self.problems) + len(self.duplicates)
        return rows


def read_manifest(
    source: str | os.PathLike[str],
    *,
    s3_client: S3Client | None = None,
    expected_bucket_owner: str | None = None,
) -> Manifest:
    """Read and validate a manifest file, or list an ``s3://bucket/prefix/`` with ``s3_client``
    (as ``expected_bucket_owner``'s bucket, if given)."""
    if isinstance(source, str) and source.startswith("s3://"):
        if s3_client is None:
            raise ValueError("an s3:// manifest source needs an s3_client")
        name = source
        raw, digest = list_prefix_rows(source, s3_client, expected_bucket_owner)
    else:
        name = os.fsdecode(source)
        raw, digest = read_file(name)
    if not raw.locations:
        raise ManifestError(f"{name}: has no data rows")
    return validate(raw, name, digest)


def problems_table(problems: list[ManifestProblem]) -> pa.Table:
    """Rejected rows in the plan's layout, with ``invalid_reason`` set (overrides left null)."""
    count = len(problems)
    overrides = [pa.nulls(count, TABLE_SCHEMA.field(name).type) for name in OVERRIDE_COLUMNS]
    return pa.Table.from_arrays(
        [
            pa.array([p.row for p in problems], pa.int64()),
            pa.array([p.line for p in problems], pa.int64()),
            pa.array([p.input_location for p in problems], pa.string()),
            *overrides,
            pa.array([p.reason for p in problems], pa.string()),
        ],
        schema=PROBLEMS_SCHEMA,
    )


def validate(raw: RawRows, source: str, digest: str) -> Manifest:
    # Row index -> why the row is refused: every reason, joined, so one problem tells them all.
    reasons = dict(raw.broken)
    locations = raw.locations
    _check_locations(locations, raw.broken, reasons)
    columns = {name: _check_column(name, cells, reasons) for name, cells in raw.overrides.items()}
    keep, duplicates = _deduplicate(locations, columns.get("inference_id"), reasons)
    problems = [
        ManifestProblem(
            source,
            raw.starts[i],
            reasons[i],
            row=i + 1,
            input_location=_storable(locations[i]),
            unit=raw.unit,
        )
        for i in sorted(reasons)
    ]
    # Refused rows may hold text Arrow cannot store (lone surrogates from JSON escapes); their
    # raw text lives on in the problems.
    for i in reasons:
        locations[i] = ""
    table = _table(raw.starts, locations, columns, keep)
    return Manifest(source, digest, table, problems, duplicates)


def _add_reason(reasons: dict[int, str], row: int, reason: str) -> None:
    reasons[row] = f"{reasons[row]}; {reason}" if row in reasons else reason


def _check_locations(locations: list[str], broken: dict[int, str], reasons: dict[int, str]) -> None:
    match = _VALID_LOCATION.fullmatch
    # Two passes in C settle the usual all-valid manifest without a Python loop.
    if max(map(len, locations)) <= INPUT_LOCATION_MAX and all(map(match, locations)):
        return
    for i, location in enumerate(locations):
        if i in broken or (len(location) <= INPUT_LOCATION_MAX and match(location)):
            continue
        reason = check_input_location(location)
        if reason:
            _add_reason(reasons, i, reason)


def _check_column(name: str, cells: list[Any], reasons: dict[int, str]) -> list[Any]:
    """The column's valid values (None where unset or refused); its problems go into ``reasons``."""
    distinct = set(cells)
    if len(distinct) > _FEW_VALUES:
        values: list[Any] = [None] * len(cells)
        for i, cell in enumerate(cells):
            value, reason = _check_cell(name, cell)
            if reason:
                _add_reason(reasons, i, reason)
            else:
                values[i] = value
        return values
    # Override columns mostly repeat a few values: check each once, then map the whole column.
    checked = {cell: _check_cell(name, cell) for cell in distinct}
    value_of = {cell: value for cell, (value, _) in checked.items()}
    refused = {cell: reason for cell, (_, reason) in checked.items() if reason}
    if refused:
        for i, cell in enumerate(cells):
            if cell in refused:
                _add_reason(reasons, i, refused[cell])
    return list(map(value_of.__getitem__, cells))


def _check_cell(name: str, cell: Any) -> tuple[Any, str | None]:
    """A cell's value (None when empty) and, if the API would refuse it, why."""
    if cell is None:
        return None, None
    if name in INTEGER_COLUMNS:
        try:
            number = _whole_number(cell)
        except _NotWholeError:
            return None, f"{_option_problem(name, cell)}, not {shown(cell, 40)}"
        if number is None:
            return None, None
        problem = _option_problem(name, number)
        return (None, f"{problem}, not {shown(number, 40)}") if problem else (number, None)
    text = cell.strip()
    if not text:
        return None, None
    problem = check_inference_id(text) if name == "inference_id" else _option_problem(name, text)
    return (None, problem) if problem else (text, None)


def _option_problem(name: str, value: Any) -> str | None:
    problems = RequestOptions(**{name: value}).problems()
    return problems[0] if problems else None


def _whole_number(cell: Any) -> int | None:
    """``cell`` as an int: ints, integral floats and their text; None for empty and NaN."""
    if isinstance(cell, bool):
        raise _NotWholeError
    if isinstance(cell, int):
        return cell
    if isinstance(cell, float):
        if math.isnan(cell):
            return None
        if cell.is_integer():
            return int(cell)
        raise _NotWholeError
    if isinstance(cell, str):
        text = cell.strip()
        if not text:
            return None
        match = _WHOLE_NUMBER.fullmatch(text)
        if match:
            return int(match.group(1))
    raise _NotWholeError


def _storable(text: str | None) -> str | None:
    """``text`` as Arrow can store it: lone surrogates escaped; None for an empty cell."""
    if not text:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _deduplicate(
    locations: list[str], own_ids: list[Any] | None, reasons: dict[int, str]
) -> tuple[array[int] | None, list[Duplicate]]:
    """Rows to keep (None: all of them) and the duplicates dropped; ID clashes become reasons."""
    if not reasons and len(set(locations)) == len(locations):
        if own_ids is None:
            return None, []
        distinct_ids = set(own_ids)
        distinct_ids.discard(None)
        if len(distinct_ids) == len(own_ids) - own_ids.count(None):
            return None, []
    keep = array("q")
    duplicates: list[Duplicate] = []
    first_row: dict[str, int] = {}
    id_row: dict[str, int] = {}
    for i, location in enumerate(locations):
        if i in reasons:
            continue
        first = first_row.get(location)
        if first is not None:
            duplicates.append(Duplicate(i + 1, first + 1, location))
            continue
        own = own_ids[i] if own_ids is not None else None
        if own is not None:
            other = id_row.setdefault(own, i)
            if other != i:
                reasons[i] = f"inference_id {own!r} is already used by row {other + 1}"
                continue
        first_row[location] = i
        keep.append(i)
    return keep, duplicates


def _int64(values: Sequence[int]) -> np.ndarray:
    if isinstance(values, range):
        return np.arange(values.start, values.stop, values.step, dtype=np.int64)
    if isinstance(values, array):  # the readers' own: no copy
        return np.frombuffer(values, dtype=np.int64)
    return np.asarray(values, dtype=np.int64)


def _table(
    starts: Sequence[int],
    locations: list[str],
    columns: dict[str, list[Any]],
    keep: array[int] | None,
) -> pa.Table:
    count = len(locations)
    if keep is None:
        rows, lines = np.arange(1, count + 1, dtype=np.int64), _int64(starts)
    else:
        kept = _int64(keep)
        rows, lines = kept + 1, _int64(starts)[kept]
    taken = None if keep is None else pa.array(rows - 1)

    def column(values: list[Any] | None, name: str) -> pa.Array:
        kind = TABLE_SCHEMA.field(name).type
        if values is None:
            return pa.nulls(len(rows), kind)
        built = pa.array(values, kind)
        return built if taken is None else built.take(taken)

    return pa.Table.from_arrays(
        [
            pa.array(rows),
            pa.array(lines),
            column(locations, "input_location"),
            *(column(columns.get(name), name) for name in OVERRIDE_COLUMNS),
        ],
        schema=TABLE_SCHEMA,
    )
