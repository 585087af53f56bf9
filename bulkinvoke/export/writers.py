"""Writing Arrow tables as Parquet, CSV or JSON Lines, a chunk at a time.

CSV cells that a spreadsheet would run as formulas are defused; JSON Lines are built a column at a
time, with times as ISO 8601 UTC text (CSV's times too).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import closing
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

# A spreadsheet runs a cell that starts with one of these as a formula.
CSV_FORMULA_START = r"^[=+\-@\t\r]"


class TableWriter(Protocol):
    def write_table(self, table: pa.Table) -> None: ...

    def close(self) -> None: ...


def table_writer(kind: str, sink: IO[bytes], schema: pa.Schema) -> TableWriter:
    if kind == "parquet":
        import pyarrow.parquet as pq

        writer: TableWriter = pq.ParquetWriter(sink, schema)
        return writer
    if kind == "csv":
        return _CsvWriter(sink, schema)
    return _JsonLinesWriter(sink)


def write_all(
    writer: TableWriter, chunks: Iterable[pa.Table], *inspect: Callable[[pa.Table], None]
) -> None:
    """Write every chunk, after showing it to each of ``inspect``."""
    with closing(writer):
        for chunk in chunks:
            for look in inspect:
                look(chunk)
            writer.write_table(chunk)
            # Let go of this chunk before the next one is made: their bodies never coexist.
            del chunk


class _CsvWriter:
    def __init__(self, sink: IO[bytes], schema: pa.Schema) -> None:
        import pyarrow.csv

        self._writer = pyarrow.csv.CSVWriter(sink, _text_times(schema.empty_table()).schema)

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(csv_safe(_text_times(table)))

    def close(self) -> None:
        self._writer.close()


def _text_times(table: pa.Table) -> pa.Table:
    """``table`` with its timestamps as ``iso_times`` text, as in JSON Lines."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            times = iso_times(table.column(index))
            table = table.set_column(index, pa.field(field.name, times.type), times)
    return table


class _JsonLinesWriter:
    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink

    def write_table(self, table: pa.Table) -> None:
        if table.num_rows:
            self._sink.write(json_lines(table))

    def close(self) -> None:
        pass


def json_lines(table: pa.Table) -> pa.Buffer:
    """``table`` as JSON Lines in UTF-8, built a column at a time rather than a row at a time.
    Times are ISO 8601 UTC with milliseconds; NaN and infinities, which JSON lacks, are null."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.large_string()
    null = pa.scalar("null", text)
    parts: list[Any] = []
    for index, (name, column) in enumerate(zip(table.column_names, table.columns, strict=True)):
        parts.append(pa.scalar(("{" if index == 0 else ",") + json.dumps(name) + ":", text))
        parts.append(pc.fill_null(_json_values(column), null))
    parts.append(pa.scalar("}\n", text))
    lines = pc.binary_join_element_wise(*parts, pa.scalar("", text)).combine_chunks()
    # No line is null, so the text of the lines lies in their data buffer one after another,
    # between the first and the last of their offsets.
    offsets = np.frombuffer(lines.buffers()[1], np.int64)
    return lines.buffers()[2][offsets[lines.offset] : offsets[lines.offset + len(lines)]]


def _json_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each value of ``column`` as JSON text (null stays null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind, text = column.type, pa.large_string()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _json_strings(pc.cast(column, text))
    if pa.types.is_timestamp(kind):
        return _json_strings(iso_times(column))
    if pa.types.is_floating(kind):
        return pc.if_else(pc.is_finite(column), pc.cast(column, text), pa.scalar(None, text))
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return pc.cast(column, text)
    raise TypeError(f"no JSON form for a {kind} column")


def iso_times(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as ISO 8601 UTC text with milliseconds: ``2026-01-01T00:00:01.500Z``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # Pieced together from their fields: three times faster than strftime or a cast to text.
    text = pa.large_string()
    utc = pc.cast(column, pa.timestamp("ms", "UTC"))

    def digits(values: pa.ChunkedArray, width: int = 2) -> pa.ChunkedArray:
        return pc.utf8_lpad(pc.cast(values, text), width=width, padding="0")

    parts = [
        pc.cast(pc.cast(utc, pa.date32()), text),
        "T",
        digits(pc.hour(utc)),
        ":",
        digits(pc.minute(utc)),
        ":",
        digits(pc.second(utc)),
        ".",
        digits(pc.millisecond(utc), 3),
        "Z",
    ]
    scalars = [pa.scalar(p, text) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*scalars, pa.scalar("", text))


# What JSON requires escaped in a string (the quote, the backslash, U+0000 to U+001F), and the
# line separators that JSON allows raw but that would split a line for str.splitlines readers.
# The backslash comes first, so that the escapes added after it stay as they are.
_JSON_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"} | {
    chr(c): f"\\u{c:04x}" for c in [*range(0x20), 0x85, 0x2028, 0x2029] if chr(c) not in "\n\r\t"
}
_NEEDS_ESCAPE = r'[\x00-\x1f"\\\x{85}\x{2028}\x{2029}]'


def _json_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    # Most columns (URIs, IDs, states) need no escape at all, which one scan tells. Otherwise
    # each character is looked for before it is replaced: a one-character pattern is found at
    # memchr speed, while a replacement copies the whole column.
    if _any_match(column, _NEEDS_ESCAPE):
        for raw, escaped in _JSON_ESCAPES.items():
            if _any_match(column, f"\\x{{{ord(raw):x}}}"):
                column = pc.replace_substring(column, raw, escaped)
    quote, none = pa.scalar('"', pa.large_string()), pa.scalar("", pa.large_string())
    return pc.binary_join_element_wise(quote, column, quote, none)


def _any_match(column: pa.ChunkedArray, pattern: str) -> bool:
    import pyarrow.compute as pc

    return bool(pc.any(pc.match_substring_regex(column, pattern)).as_py())


def csv_safe(table: pa.Table) -> pa.Table:
    """``table`` with every text cell that a spreadsheet would run as a formula (one starting
    with =, +, -, @, tab or CR) prefixed with a single quote. Numbers are left alone: a cell
    that is only a number is no formula."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.match_substring_regex(column, CSV_FORMULA_START)
            # Quoting copies the column: only worth it when some cell needs it.
            if pc.any(risky).as_py():
                quoted = pc.utf8_replace_slice(column, start=0, stop=0, replacement="'")
                column = pc.if_else(risky, quoted, column)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema)
