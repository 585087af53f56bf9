"""A table of records, each to be sent as a payload of its own (``submit --stage``).

JSON Lines: each line whole is a payload, or with ``--payload-column KEY`` the value under KEY
of each line's object (a string as its UTF-8 bytes, any other JSON value as compact JSON), the
other keys kept as the record's columns. Parquet: ``--payload-column`` names a string or binary
column, the other columns are kept. A record without a payload, or with one over the service's
input size limit, is a problem of its line (file, line, reason) like a bad manifest row.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from bulkinvoke.errors import ManifestError
from bulkinvoke.manifest.formats import decode, read_bytes
from bulkinvoke.manifest.rows import fingerprint, shown, split_lines

if TYPE_CHECKING:
    import pyarrow as pa

# Asynchronous Inference takes input payloads up to 1 GB (SageMaker's Async Inference quotas;
# the API model does not state it, as the input travels through S3).
MAX_PAYLOAD_BYTES = 1_000_000_000


@dataclass
class Records:
    """Each record's payload (None where it has none: see ``broken``) and its other columns."""

    unit: str  # "line" (JSON Lines) or "row" (Parquet)
    starts: list[int]
    payloads: list[bytes | None]
    # The extension of each payload's staged object: json, txt or bin.
    extensions: list[str]
    columns: pa.Table
    broken: dict[int, str] = field(default_factory=dict)
    digest: str = ""

    def staged_key(self, index: int) -> str:
        """The content address of record ``index``'s payload: ``<sha256>.<extension>``."""
        payload = self.payloads[index]
        assert payload is not None
        return f"{hashlib.sha256(payload).hexdigest()}.{self.extensions[index]}"


def read_records(source: str, payload_column: str | None) -> Records:
    data = read_bytes(source)
    digest = fingerprint(data + f"\0payload={payload_column}".encode())
    if PurePath(source).suffix.lower() == ".parquet" or data.startswith(b"PAR1"):
        if payload_column is None:
            raise ManifestError(
                f"{source}: a Parquet table needs --payload-column to name its payload"
            )
        records = _parquet_records(data, source, payload_column)
    else:
        records = _json_lines_records(decode(data, source), source, payload_column)
    if not records.payloads:
        raise ManifestError(f"{source}: has no records")
    records.digest = digest
    for index, payload in enumerate(records.payloads):
        if payload is not None and len(payload) > MAX_PAYLOAD_BYTES:
            records.broken[index] = (
                f"the payload is {len(payload):,} bytes, over the service's limit of "
                f"{MAX_PAYLOAD_BYTES:,}"
            )
            records.payloads[index] = None
    return records


def _json_lines_records(text: str, source: str, key: str | None) -> Records:
    import pyarrow as pa

    starts: list[int] = []
    payloads: list[bytes | None] = []
    extensions: list[str] = []
    others: list[dict[str, Any]] = []
    broken: dict[int, str] = {}
    for number, line in enumerate(split_lines(text), 1):
        if not line.strip():
            continue
        index = len(payloads)
        starts.append(number)
        if key is None:
            payloads.append(line.strip().encode("utf-8", "surrogatepass"))
            extensions.append("json")
            others.append({})
            continue
        payload, extension, rest, problem = _payload_of(line, key)
        payloads.append(payload)
        extensions.append(extension)
        others.append(rest)
        if problem:
            broken[index] = problem
    # Every key of any record is a column (pyarrow would take the first record's alone).
    names = list(dict.fromkeys(name for row in others for name in row))
    columns = pa.table({name: _column([row.get(name) for row in others]) for name in names})
    return Records("line", starts, payloads, extensions, columns, broken)


def _column(values: list[Any]) -> Any:
    """The values of one key as an Arrow array: strings, numbers or booleans as themselves;
    objects, lists and values of mixed kinds (1 here, "two" there) as their JSON text, which
    every export format can hold (an empty object cannot be a Parquet column)."""
    import pyarrow as pa

    kinds = {_KINDS.get(type(value), "json") for value in values if value is not None}
    if len(kinds) <= 1 and "json" not in kinds:
        with contextlib.suppress(pa.ArrowException, OverflowError):  # an int past 64 bits
            return pa.array(values)
    return pa.array([None if v is None else json.dumps(v) for v in values], pa.string())


_KINDS = {str: "string", int: "number", float: "number", bool: "boolean"}


def _payload_of(line: str, key: str) -> tuple[bytes | None, str, dict[str, Any], str | None]:
    try:
        value = json.loads(line)
    except ValueError as error:
        return None, "json", {}, f"not valid JSON: {error}"
    if not isinstance(value, dict):
        return None, "json", {}, f"expected a JSON object with the key {key!r}"
    if key not in value or value[key] is None:
        return None, "json", value, f"has no {key!r} (the payload)"
    payload = value.pop(key)
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass"), "txt", value, None
    return json.dumps(payload, separators=(",", ":")).encode(), "json", value, None


def _parquet_records(data: bytes, source: str, column: str) -> Records:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as error:
        raise ManifestError(f"{source}: not a readable Parquet file ({error})") from None
    if column not in table.column_names:
        names = ", ".join(shown(name, 40) for name in table.column_names)
        raise ManifestError(f"{source}: has no column {column!r} (it has {names})")
    kind = table.schema.field(column).type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        payloads = [None if v is None else v.encode("utf-8") for v in table[column].to_pylist()]
        extension = "txt"
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        payloads = table[column].to_pylist()
        extension = "bin"
    else:
        raise ManifestError(f"{source}: column {column} is {kind}; a payload is a string or bytes")
    broken = {i: f"has no {column!r} (the payload)" for i, p in enumerate(payloads) if p is None}
    count = len(payloads)
    return Records(
        "row",
        list(range(1, count + 1)),
        payloads,
        [extension] * count,
        table.drop_columns([column]),
        broken,
    )
