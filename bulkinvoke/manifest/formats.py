"""Reading a manifest file (or listing an S3 prefix) into ``RawRows``, whatever its format.

The format follows the file's extension, else its content. The text is decoded here, once, for
every text format; CSV and TSV are read by ``bulkinvoke.manifest.delimited``, the other
formats here.
"""

from __future__ import annotations

import codecs
import json
import re
from array import array
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.errors import ManifestError
from bulkinvoke.manifest.delimited import read_delimited
from bulkinvoke.manifest.rows import (
    INTEGER_COLUMNS,
    OVERRIDE_COLUMNS,
    URI_COLUMNS,
    RawRows,
    column_name,
    fingerprint,
    header_columns,
    shown,
    split_lines,
)
from bulkinvoke.s3uri import bucket_owner_args, list_prefix, parse_s3_uri

EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "text",
    ".lst": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}

_NEWLINE_BYTES = re.compile(rb"\r\n?|\n")
# The rest of the first line from its first non-blank character.
_FIRST_WORD = re.compile(r"\S[^\r\n]*")
_PARQUET_MAGIC = b"PAR1"


def decode(data: bytes, source: str) -> str:
    """The text of a manifest: UTF-8 (with or without BOM) or UTF-16 with a BOM."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise ManifestError(f"{source}: not valid UTF-16 ({error.reason})") from None
    else:
        if b"\0" in data:
            # Text in UTF-16 has a NUL in every other byte while it stays in ASCII.
            if max(data[0::2].count(0), data[1::2].count(0)) * 4 > len(data):
                raise ManifestError(
                    f"{source}: looks like UTF-16 without a byte-order mark; save it as UTF-8"
                )
            raise ManifestError(f"{source}: is a binary file, not a manifest (it has NUL bytes)")
        data = data.removeprefix(codecs.BOM_UTF8)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = len(_NEWLINE_BYTES.findall(data, 0, error.start)) + 1
            raise ManifestError(
                f"{source}:{line}: not valid UTF-8 (byte 0x{data[error.start]:02x}); "
                "save the manifest as UTF-8"
            ) from None
    if "\0" in text:
        raise ManifestError(f"{source}: is a binary file, not a manifest (it has NUL characters)")
    return text


def read_file(source: str) -> tuple[RawRows, str]:
    """A manifest file's rows, read in the format its extension names (else its content shows),
    and the fingerprint of its bytes."""
    data = read_bytes(source)
    digest = fingerprint(data)
    kind = EXTENSIONS.get(PurePath(source).suffix.lower())
    if kind == "parquet" or (kind is None and data.startswith(_PARQUET_MAGIC)):
        return read_parquet(data, source), digest
    text = decode(data, source)
    # Only the text is needed from here on; a big manifest should not be held twice.
    del data
    return _read_text_format(text, source, kind), digest


def read_bytes(source: str) -> bytes:
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ManifestError(f"{source}: is a directory, not a manifest file") from None
    except OSError as error:
        raise ManifestError(f"{source}: cannot read the file ({error.strerror or error})") from None


def _read_text_format(text: str, source: str, kind: str | None) -> RawRows:
    start = _FIRST_WORD.search(text)
    if start is None:
        raise ManifestError(f"{source}: is empty")
    if kind is None:
        kind = _sniff(start.group())
    elif kind == "json":
        # A .json file is the ManifestFile array, but JSON Lines under that name are common.
        kind = "jsonl" if start.group()[0] in ("{", '"') else "manifestfile"
    if kind == "csv":
        return read_delimited(text, source, ",")
    if kind == "tsv":
        return read_delimited(text, source, "\t")
    if kind == "jsonl":
        return read_json_lines(text, source)
    if kind == "manifestfile":
        return read_manifest_file(text, source)
    return read_text(text)


def _sniff(first_line: str) -> str:
    """The format of a file without a known extension, from its first non-blank line."""
    if first_line[0] == "[":
        return "manifestfile"
    # Before JSON: a quoted CSV header starts with a quote too.
    for delimiter, kind in (("\t", "tsv"), (",", "csv")):
        cells = [column_name(cell).strip('"') for cell in first_line.split(delimiter)]
        if len(cells) > 1 and any(cell in URI_COLUMNS for cell in cells):
            return kind
    if first_line[0] in ("{", '"'):
        return "jsonl"
    return "text"


def read_text(text: str) -> RawRows:
    """One URI per line; blank lines and ``#`` comment lines are skipped."""
    values = [line.strip() for line in split_lines(text)]
    if all(values) and not any(value[0] == "#" for value in values):
        # The common case needs no per-row work: every line is a row.
        rows = RawRows("line", range(1, len(values) + 1), values)
    else:
        starts = array("q")
        kept: list[str] = []
        for number, value in enumerate(values, 1):
            if value and value[0] != "#":
                starts.append(number)
                kept.append(value)
        rows = RawRows("line", starts, kept)
    # A first line naming the URI column is a header (a one-column CSV saved as .txt), not a URI.
    if rows.locations and rows.locations[0].lower() in URI_COLUMNS:
        return RawRows("line", rows.starts[1:], rows.locations[1:])
    return rows


def _json_kind(value: object) -> str:
    names = {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a string" if isinstance(value, str) else "a number")


def _json_error(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} (column {error.colno})"
    # Too many digits in a number, or nesting too deep for the parser.
    return str(error).split(":")[0] or type(error).__name__


def read_json_lines(text: str, source: str) -> RawRows:
    """JSON Lines: one object per line (keys as CSV column names), or a bare JSON string URI."""
    starts = array("q")
    locations: list[str] = []
    overrides: dict[str, list[Any]] = {}
    broken: dict[int, str] = {}
    layouts: dict[tuple[str, ...], _JsonLayout] = {}
    first_keys: tuple[str, ...] | None = None
    any_uri = False
    for number, line in enumerate(split_lines(text), 1):
        if not line or line.isspace():
            continue
        row = len(locations)
        starts.append(number)
        location, problem = "", None
        cells: tuple[tuple[str, Any], ...] = ()
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as error:
            value, problem = None, f"not valid JSON: {_json_error(error)}"
        if isinstance(value, str):
            location, any_uri = value.strip(), True
        elif isinstance(value, dict):
            keys = tuple(value)
            layout = layouts.get(keys) or _json_layout(keys)
            if len(layouts) < _LAYOUTS:
                layouts[keys] = layout
            first_keys = first_keys or keys
            any_uri = any_uri or layout.uri_key is not None
            location, problem = _json_location(value, layout.uri_key)
            cells = tuple((name, value[key]) for key, name in layout.fields)
            problem = problem or _json_cells_problem(cells)
        elif problem is None:
            problem = f"expected a JSON object or string, found {_json_kind(value)}"
        locations.append(location)
        if problem:
            broken[row] = problem
            cells = ()
        for name, cell in cells:
            if name not in overrides:
                overrides[name] = [None] * row
            overrides[name].append(cell)
        for values in overrides.values():
            if len(values) == row:
                values.append(None)
    if first_keys is not None and not any_uri:
        found = ", ".join(shown(key, 40) for key in first_keys) or "(none)"
        raise ManifestError(
            f"{source}: no line has an input_location field (also accepted: "
            f"{', '.join(URI_COLUMNS[1:])}); fields found: {found}"
        )
    return RawRows("line", starts, locations, overrides, broken)


# Objects with more distinct key sets than this are looked at one by one, uncached.
_LAYOUTS = 1024


@dataclass(frozen=True)
class _JsonLayout:
    """Where the columns are in JSON objects with one set of keys."""

    uri_key: str | None
    fields: tuple[tuple[str, str], ...]  # (key, override column name)


def _json_layout(keys: tuple[str, ...]) -> _JsonLayout:
    by_name = {}
    for key in keys:
        name = column_name(key)
        if name in URI_COLUMNS or name in OVERRIDE_COLUMNS:
            by_name[name] = key
    uri_key = next((by_name[name] for name in URI_COLUMNS if name in by_name), None)
    fields = tuple((by_name[name], name) for name in OVERRIDE_COLUMNS if name in by_name)
    return _JsonLayout(uri_key, fields)


def _json_location(value: dict[str, Any], uri_key: str | None) -> tuple[str, str | None]:
    if uri_key is None:
        return "", "has no input_location field"
    location = value[uri_key]
    if location is None:
        return "", None
    if not isinstance(location, str):
        return "", f"input_location must be a JSON string, not {_json_kind(location)}"
    return location.strip(), None


def _json_cells_problem(cells: tuple[tuple[str, Any], ...]) -> str | None:
    for name, cell in cells:
        if name in INTEGER_COLUMNS:
            if isinstance(cell, bool) or not isinstance(cell, int | float | str | None):
                return f"{name} must be a JSON number, not {_json_kind(cell)}"
        elif cell is not None and not isinstance(cell, str):
            return f"{name} must be a JSON string, not {_json_kind(cell)}"
    return None


def read_manifest_file(text: str, source: str) -> RawRows:
    """SageMaker's ManifestFile: ``[{"prefix": "s3://b/p/"}, "key", ...]``, rows prefix + key."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(
            f"{source}:{error.lineno}: not valid JSON: {_json_error(error)}"
        ) from None
    except (ValueError, RecursionError) as error:
        raise ManifestError(f"{source}: not valid JSON: {_json_error(error)}") from None
    if not (
        isinstance(document, list)
        and document
        and isinstance(document[0], dict)
        and isinstance(document[0].get("prefix"), str)
    ):
        raise ManifestError(
            f'{source}: a ManifestFile must be a JSON array starting with {{"prefix": "s3://..."}}'
        )
    prefix: str = document[0]["prefix"]
    locations: list[str] = []
    broken: dict[int, str] = {}
    for row, entry in enumerate(document[1:]):
        if isinstance(entry, str):
            locations.append((prefix + entry).strip())
        else:
            locations.append("")
            broken[row] = (
                f"entry must be a string (a key under the prefix), not {_json_kind(entry)}"
            )
    return RawRows("entry", range(1, len(locations) + 1), locations, {}, broken)


def read_parquet(data: bytes, source: str) -> RawRows:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        schema = parquet.schema_arrow
        uri_index, override_index = header_columns(schema.names, source)
        wanted = [("input_location", uri_index), *override_index.items()]
        for name, index in wanted:
            column = schema.field(index)
            if not _parquet_type_fits(column.type, name in INTEGER_COLUMNS):
                expected = "whole numbers" if name in INTEGER_COLUMNS else "strings"
                raise ManifestError(
                    f"{source}: column {column.name} is {column.type}, expected {expected}"
                )
        table = parquet.read(columns=[schema.field(index).name for _, index in wanted])
    except (pa.ArrowException, OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[:1] or [type(error).__name__]
        raise ManifestError(f"{source}: not a readable Parquet file ({first_line[0]})") from None
    locations = [(value or "").strip() for value in table.column(0).to_pylist()]
    overrides = {name: table.column(i).to_pylist() for i, (name, _) in enumerate(wanted) if i}
    return RawRows("row", range(1, len(locations) + 1), locations, overrides)


def _parquet_type_fits(column_type: Any, integer: bool) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(column_type):
        column_type = column_type.value_type
    text = (
        pa.types.is_string(column_type)
        or pa.types.is_large_string(column_type)
        or pa.types.is_string_view(column_type)
    )
    numeric = pa.types.is_integer(column_type) or pa.types.is_floating(column_type)
    return pa.types.is_null(column_type) or text or (integer and numeric)


def list_prefix_rows(
    uri: str, s3_client: S3Client, expected_bucket_owner: str | None = None
) -> tuple[RawRows, str]:
    """Every object under an ``s3://bucket/prefix``, in key order, and the listing's fingerprint;
    with ``expected_bucket_owner``, S3 refuses to list a bucket of another account."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        bucket, prefix = parse_s3_uri(uri)
    except ValueError:
        raise ManifestError(f"{uri}: not an s3://bucket/prefix/ URI") from None
    try:
        listed = list_prefix(s3_client, uri, bucket_owner_args(expected_bucket_owner))
        # Keys ending in "/" are the "folders" of the S3 console, not inputs.
        keys = [prefix + name for name in listed if not name.endswith("/")]
    except (BotoCoreError, ClientError) as error:
        raise ManifestError(f"{uri}: cannot list the prefix ({error})") from None
    if not keys:
        raise ManifestError(f"{uri}: no objects under this prefix")
    # Directory buckets do not list in key order; sorting makes the plan the same either way.
    keys.sort()
    locations = [f"s3://{bucket}/{key}" for key in keys]
    digest = fingerprint("\n".join(locations).encode("utf-8"))
    return RawRows("key", range(1, len(locations) + 1), locations), digest
