"""CSV and TSV manifests: a header row, then one record per data row.

Quoted fields (which may hold delimiters, quotes and line breaks) are read as the csv module reads
them. Records are gathered a chunk at a time into columns, so that a million-row manifest costs a
few C-level passes per chunk rather than Python work per row; only a chunk with a blank or
malformed record is looked at record by record.
"""

from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Callable, Sequence
from itertools import chain, islice, repeat
from typing import Any

from bulkinvoke.errors import ManifestError
from bulkinvoke.manifest.rows import RawRows, header_columns, split_lines

# Records per chunk: big enough to amortise the per-chunk work, small enough not to matter.
_CHUNK = 65536


def read_delimited(text: str, source: str, delimiter: str) -> RawRows:
    """CSV or TSV with a header row; quoted fields (which may span lines) as the csv module reads
    them."""
    if '"' in text:
        return quoted_rows(text, source, delimiter)
    return unquoted_rows(text, source, delimiter)


def unquoted_rows(text: str, source: str, delimiter: str) -> RawRows:
    """Delimited text without quotes, which the csv module would split at every delimiter: so do
    the str methods, without making a list per record."""
    lines = split_lines(text)
    header_at = next(
        (i for i, line in enumerate(lines) if line.replace(delimiter, "").strip()), None
    )
    if header_at is None:
        raise ManifestError(f"{source}: has no header row")
    columns = _CsvColumns(lines[header_at].split(delimiter), source)
    first = header_at + 1
    for offset in range(first, len(lines), _CHUNK):
        chunk = lines[offset : offset + _CHUNK]
        starts = range(offset + 1, offset + 1 + len(chunk))
        if set(map(str.count, chunk, repeat(delimiter))) == {columns.width - 1}:
            cells = delimiter.join(chunk).split(delimiter)
            if columns.add_columns(_every_nth(cells, columns.width), starts):
                continue
        columns.add_each([line.split(delimiter) for line in chunk], starts)
    return columns.rows()


def _every_nth(cells: list[str], width: int) -> Callable[[int], list[str]]:
    """Column ``index`` of records laid end to end ``width`` cells at a time."""
    return lambda index: cells[index::width]


def quoted_rows(text: str, source: str, delimiter: str) -> RawRows:
    previous_limit = csv.field_size_limit()
    # No field can be longer than the file, so no row can trip the csv module's size guard: an
    # overlong value becomes a validation problem of its row instead.
    csv.field_size_limit(max(previous_limit, len(text) + 1))
    try:
        # Line numbers come free while every record takes one line; a quoted line break sends
        # the file through the record-by-record reading, which counts lines as it goes.
        try:
            return _read_csv(text, source, delimiter, by_chunks=True)
        except _RecordSpansLinesError:
            return _read_csv(text, source, delimiter, by_chunks=False)
    finally:
        csv.field_size_limit(previous_limit)


class _RecordSpansLinesError(Exception):
    pass


def _read_csv(text: str, source: str, delimiter: str, by_chunks: bool) -> RawRows:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        records = 0
        for header in reader:
            records += 1
            if "".join(header).strip():
                break
        else:
            raise ManifestError(f"{source}: has no header row")
        columns = _CsvColumns(header, source)
        if by_chunks:
            if reader.line_num != records:
                raise _RecordSpansLinesError
            while chunk := list(islice(reader, _CHUNK)):
                if reader.line_num != records + len(chunk):
                    raise _RecordSpansLinesError
                columns.add(chunk, range(records + 1, records + 1 + len(chunk)))
                records += len(chunk)
        else:
            chunk, starts = [], array("q")
            end = reader.line_num
            for cells in reader:
                chunk.append(cells)
                starts.append(end + 1)
                end = reader.line_num
                if len(chunk) == _CHUNK:
                    columns.add(chunk, starts)
                    chunk, starts = [], array("q")
            columns.add(chunk, starts)
    except csv.Error as error:
        # Lenient parsing leaves few of these (which rules are strict varies between Python
        # versions), but any that comes is about the file, not a bug.
        raise ManifestError(f"{source}:{reader.line_num}: cannot parse as CSV: {error}") from None
    return columns.rows()


class _CsvColumns:
    """Delimited records gathered into columns; a record blank in every cell is not a data row.

    Columns grow by one piece per chunk of records and are joined at the end: pieces are tuples
    of strings, which the garbage collector stops tracking, where growing lists of millions of
    strings would be traversed again by every collection while the file is read.
    """

    def __init__(self, header: list[str], source: str) -> None:
        self.width = len(header)
        self.uri_index, self.override_index = header_columns(header, source)
        self.count = 0
        self.starts = array("q")
        self.locations: list[Sequence[str]] = []
        self.overrides: dict[str, list[Sequence[Any]]] = {name: [] for name in self.override_index}
        self.broken: dict[int, str] = {}

    def rows(self) -> RawRows:
        overrides = {name: _joined(pieces) for name, pieces in self.overrides.items()}
        return RawRows("line", self.starts, _joined(self.locations), overrides, self.broken)

    def add(self, records: list[list[str]], starts: Sequence[int]) -> None:
        """A chunk of records, given the line each starts on."""
        if set(map(len, records)) == {self.width}:
            transposed = list(zip(*records, strict=True))
            if self.add_columns(transposed.__getitem__, starts):
                return
        self.add_each(records, starts)

    def add_columns(self, column: Callable[[int], Sequence[str]], starts: Sequence[int]) -> bool:
        """Records of the right width, given column by column; False (and nothing added) if some
        record has no URI, being blank or a problem, and so needs ``add_each``."""
        locations = tuple(map(str.strip, column(self.uri_index)))
        if not all(locations):
            return False
        self.count += len(locations)
        self.starts.extend(starts)
        self.locations.append(locations)
        for name, index in self.override_index.items():
            self.overrides[name].append(_shared(column(index)))
        return True

    def add_each(self, records: list[list[str]], starts: Sequence[int]) -> None:
        locations: list[str] = []
        overrides: dict[str, list[Any]] = {name: [] for name in self.override_index}
        for cells, start in zip(records, starts, strict=True):
            if not "".join(cells).strip():
                continue
            self.starts.append(start)
            if len(cells) == self.width:
                locations.append(cells[self.uri_index].strip())
                for name, index in self.override_index.items():
                    overrides[name].append(cells[index])
            else:
                self.broken[self.count + len(locations)] = (
                    f"has {len(cells)} fields, but the header has {self.width}"
                )
                fits = self.uri_index < len(cells)
                locations.append(cells[self.uri_index].strip() if fits else "")
                for values in overrides.values():
                    values.append(None)
        self.count += len(locations)
        self.locations.append(locations)
        for name, values in overrides.items():
            self.overrides[name].append(values)


def _joined(pieces: list[Sequence[Any]]) -> list[Any]:
    return list(chain.from_iterable(pieces))


def _shared(values: Sequence[str]) -> Sequence[str]:
    """``values`` with equal strings made one object: override columns repeat a few values."""
    distinct = set(values)
    if len(distinct) * 2 > len(values):
        return values
    canonical = {value: value for value in distinct}
    return tuple(map(canonical.__getitem__, values))
