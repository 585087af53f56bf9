"""What every manifest reader produces, and the pieces they share.

A reader turns one manifest format into ``RawRows``: raw columns, one entry per data row, with the
place each row starts (so a problem can point at the line a user opens in an editor) and the rows
it could not read at all. Validation against the API's limits happens afterwards, in
``bulkinvoke.manifest.loader``, the same way for every format.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bulkinvoke.errors import ManifestError

# Accepted names of the URI column, in order of preference when a manifest has several.
URI_COLUMNS = ("input_location", "s3_uri", "input_uri", "uri")
STRING_COLUMNS = ("content_type", "accept", "custom_attributes", "inference_id")
INTEGER_COLUMNS = ("request_ttl_seconds", "invocation_timeout_seconds")
OVERRIDE_COLUMNS = STRING_COLUMNS + INTEGER_COLUMNS

_NEWLINE = re.compile(r"\r\n?|\n")


@dataclass
class RawRows:
    """A manifest's data rows as read, before validation: column lists of equal length."""

    # What ``starts`` counts, as shown in messages: "line", "row" (Parquet), "entry"
    # (ManifestFile JSON) or "key" (an S3 prefix listing).
    unit: str
    starts: Sequence[int]
    # The URI of each row, stripped of surrounding whitespace ("" when absent).
    locations: list[str]
    # Only the override columns the manifest has; string columns hold ``str | None``, integer
    # columns whatever the format stores (text, int, float, None).
    overrides: dict[str, list[Any]] = field(default_factory=dict)
    # Row index -> why the row could not be read (its cells are then meaningless).
    broken: dict[int, str] = field(default_factory=dict)


def fingerprint(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def column_name(name: str) -> str:
    return name.strip().lower()


def shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def split_lines(text: str) -> list[str]:
    """Physical lines, counted the way the csv module counts them (``\\r\\n``, ``\\r``, ``\\n``)."""
    lines = _NEWLINE.split(text) if "\r" in text else text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def header_columns(header: Sequence[str], source: str) -> tuple[int, dict[str, int]]:
    """The URI column's index and each override column's index, from a header's column names."""
    found: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = column_name(cell)
        if name in URI_COLUMNS or name in OVERRIDE_COLUMNS:
            if name in found:
                raise ManifestError(f"{source}: the column {name} appears twice")
            found[name] = index
    uri_column = next((name for name in URI_COLUMNS if name in found), None)
    if uri_column is None:
        names = ", ".join(shown(cell.strip(), 40) for cell in header) or "(none)"
        hint = (
            "; the first line is data: add a header line input_location"
            if any(cell.strip().startswith(("s3://", "https://")) for cell in header)
            else ""
        )
        raise ManifestError(
            f"{source}: no input_location column (also accepted: "
            f"{', '.join(URI_COLUMNS[1:])}); columns found: {names}{hint}"
        )
    overrides = {name: found[name] for name in OVERRIDE_COLUMNS if name in found}
    return found[uri_column], overrides
