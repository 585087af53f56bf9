"""Output bodies for ``export --with-output``: fetched in parallel, capped, decoded, and for
``--expand-json`` spread into ``output.<key>`` columns.

Nothing here turns an S3 key into a local path: bodies go into table cells, never into files.
"""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.calls.retry import ErrorKind, classify
from bulkinvoke.errors import ExportStopped, error_code
from bulkinvoke.s3uri import bucket_owner_args, parse_s3_uri
from bulkinvoke.states import State

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

OUTPUT_LIMIT = 1024 * 1024
DOWNLOAD_THREADS = 16
# As many failures in a row as there are downloads in flight, each already retried by botocore:
# S3 itself is failing (credentials, access, network), and the rest would fail the same way.
FAILURE_STREAK = DOWNLOAD_THREADS
# Arbitrary keys (IDs, labels) would otherwise make a table of unbounded width.
MAX_JSON_COLUMNS = 1000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Body:
    """What became of one output object: its text (or base64), or why it could not be read."""

    text: str | None = None
    encoding: str | None = None
    truncated: bool = False
    error: str | None = None


def decode_body(data: bytes, truncated: bool) -> tuple[str, str]:
    """``(text, "utf-8")`` if the body is UTF-8, else ``(base64, "base64")``. The cap may cut a
    character in two: that remnant is dropped rather than taken for binary data."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        return decoder.decode(data, final=not truncated), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def output_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` (the export table's) with the columns ``with_outputs`` adds."""
    import pyarrow as pa

    return pa.schema(
        [
            *schema,
            pa.field("output", pa.large_string()),
            pa.field("output_encoding", pa.large_string()),
            pa.field("output_truncated", pa.bool_()),
            pa.field("output_error", pa.large_string()),
        ],
        metadata=schema.metadata,
    )


def with_outputs(
    table: pa.Table, downloader: Downloader, *, max_rows: int, max_bytes: int
) -> Iterator[pa.Table]:
    """``table`` in chunks with the output columns added: the body of each succeeded row, or
    the reason it could not be read; null for the other rows."""
    import numpy as np
    import pyarrow.compute as pc

    succeeded = pc.and_(
        pc.equal(table["state"], State.SUCCEEDED.value), pc.is_valid(table["output_location"])
    )
    fetched = pc.fill_null(succeeded, False).to_numpy()
    # Sizes as the ledger saw them, unknown ones taken at the cap, to bound each chunk's bodies.
    recorded = pc.fill_null(table["output_bytes"], downloader.limit).to_numpy()
    sizes = np.where(fetched, np.minimum(recorded, downloader.limit), 0)
    schema = output_schema(table.schema)
    for start, stop in plan_chunks(sizes, max_rows=max_rows, max_bytes=max_bytes):
        chunk = table.slice(start, stop - start)
        yield _with_bodies(chunk, fetched[start:stop], downloader, schema)


def _with_bodies(
    chunk: pa.Table, fetched: np.ndarray, downloader: Downloader, schema: pa.Schema
) -> pa.Table:
    # A function of its own, so that the bodies as Python objects are freed on return, before
    # the next chunk is fetched.
    import numpy as np
    import pyarrow as pa

    locations = chunk["output_location"].to_pylist()
    positions = np.flatnonzero(fetched).tolist()
    bodies: list[Body | None] = [None] * len(chunk)
    found = downloader.fetch_all([locations[i] for i in positions])
    for position, body in zip(positions, found, strict=True):
        bodies[position] = body
    columns = [
        pa.array([b.text if b else None for b in bodies], pa.large_string()),
        pa.array([b.encoding if b else None for b in bodies], pa.large_string()),
        pa.array([bool(b and b.truncated) for b in bodies], pa.bool_()),
        pa.array([b.error if b else None for b in bodies], pa.large_string()),
    ]
    return pa.Table.from_arrays([*chunk.columns, *columns], schema=schema)


class OutputTally:
    """Counts of what ``with_outputs`` found, chunk by chunk."""

    def __init__(self) -> None:
        self.outputs = 0
        self.errors = 0
        self.truncated = 0

    def add(self, chunk: pa.Table) -> None:
        self.outputs += len(chunk) - chunk["output"].null_count
        self.errors += len(chunk) - chunk["output_error"].null_count
        self.truncated += int(chunk["output_truncated"].to_numpy().sum())


def plan_chunks(sizes: np.ndarray, *, max_rows: int, max_bytes: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``[start, stop)`` row ranges of at most ``max_rows`` rows whose ``sizes`` add
    up to at most ``max_bytes`` (a range always holds at least one row)."""
    import numpy as np

    ends = np.cumsum(sizes, dtype=np.int64)
    start, total = 0, len(sizes)
    while start < total:
        before = int(ends[start - 1]) if start else 0
        fits = int(np.searchsorted(ends, before + max_bytes, side="right"))
        stop = min(max(fits, start + 1), start + max_rows, total)
        yield start, stop
        start = stop


class Downloader:
    """Fetches the first ``limit`` bytes of output objects with a bounded pool of threads."""

    def __init__(
        self,
        s3: S3Client,
        *,
        expected_bucket_owner: str | None = None,
        limit: int = OUTPUT_LIMIT,
        threads: int = DOWNLOAD_THREADS,
    ) -> None:
        self._s3 = s3
        self._owner_args = bucket_owner_args(expected_bucket_owner)
        self.limit = limit
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="bulkinvoke-export")
        self._streak = 0

    def __enter__(self) -> Downloader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        # After a failure or Ctrl-C, queued downloads are dropped rather than waited for.
        self._pool.shutdown(wait=kind is None, cancel_futures=True)

    def fetch_all(self, locations: Sequence[str]) -> list[Body]:
        """One ``Body`` per location, in order; ``ExportStopped`` once S3 itself is failing."""
        futures = [self._pool.submit(self._fetch, location) for location in locations]
        try:
            self._watch(futures)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return [future.result()[0] for future in futures]

    def _watch(self, futures: list[Future[tuple[Body, bool]]]) -> None:
        for future in as_completed(futures):
            body, s3_failing = future.result()
            self._streak = self._streak + 1 if s3_failing else 0
            if self._streak >= FAILURE_STREAK:
                raise ExportStopped(
                    f"stopped: {self._streak} output downloads in a row failed, "
                    f"the last with {body.error}"
                )

    def _fetch(self, location: str) -> tuple[Body, bool]:
        """The body, and whether its failure is S3's rather than this object's."""
        try:
            target = parse_s3_uri(location)
        except ValueError as error:
            return Body(error=str(error)), False
        try:
            response = self._s3.get_object(
                Bucket=target.bucket,
                Key=target.key,
                # One byte past the cap tells a body of exactly the cap from a longer one.
                Range=f"bytes=0-{self.limit}",
                **self._owner_args,
            )
            data = response["Body"].read()
        except (ClientError, BotoCoreError) as error:
            if isinstance(error, ClientError) and error_code(error) == "InvalidRange":
                # S3's answer to a range on an empty object: it has no byte 0.
                return Body("", "utf-8"), False
            problem = classify(error)
            return Body(error=problem.describe()), problem.kind is not ErrorKind.REJECTED
        truncated = len(data) > self.limit
        text, encoding = decode_body(data[: self.limit], truncated)
        return Body(text, encoding, truncated), False


def json_fields(text: str | None) -> dict[str, Any] | None:
    """The top-level fields of a JSON object (nested values as JSON text), or None if ``text``
    is not one."""
    if text is None or not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    return {
        key: json.dumps(item, ensure_ascii=False) if isinstance(item, dict | list) else item
        for key, item in value.items()
    }


def json_rows(chunk: pa.Table) -> list[dict[str, Any] | None]:
    """``json_fields`` of each row's output; None where it is cut short or base64."""
    rows = zip(
        chunk["output"].to_pylist(),
        chunk["output_encoding"].to_pylist(),
        chunk["output_truncated"].to_pylist(),
        strict=True,
    )
    return [
        json_fields(text) if encoding == "utf-8" and not truncated else None
        for text, encoding, truncated in rows
    ]


def expanded(chunk: pa.Table, columns: JsonColumns) -> pa.Table:
    """``chunk`` with the ``output.<key>`` columns added."""
    import pyarrow as pa

    arrays = columns.arrays(json_rows(chunk))
    return pa.Table.from_arrays([*chunk.columns, *arrays], schema=columns.schema(chunk.schema))


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if _INT64_MIN <= value <= _INT64_MAX else "text"
    if isinstance(value, float):
        return "float"
    return "text"


class JsonColumns:
    """The ``output.<key>`` columns: every key seen (in order of first appearance, up to
    ``limit``) with a type that holds all its values: bool, int64, float64 or else text."""

    def __init__(self, limit: int = MAX_JSON_COLUMNS) -> None:
        self._kinds: dict[str, set[str]] = {}
        self._limit = limit
        self.capped = False

    def __len__(self) -> int:
        return len(self._kinds)

    def observe(self, fields: dict[str, Any] | None) -> None:
        for key, value in (fields or {}).items():
            kinds = self._kinds.get(key)
            if kinds is None:
                if len(self._kinds) >= self._limit:
                    self.capped = True
                    continue
                kinds = self._kinds[key] = set()
            if value is not None:
                kinds.add(_kind(value))

    def observe_chunk(self, chunk: pa.Table) -> None:
        """``observe`` each output of a ``with_outputs`` chunk."""
        for fields in json_rows(chunk):
            self.observe(fields)

    def schema(self, schema: pa.Schema) -> pa.Schema:
        """``schema`` (with the output columns) followed by the ``output.<key>`` columns."""
        import pyarrow as pa

        return pa.schema([*schema, *self.fields()], metadata=schema.metadata)

    def fields(self) -> list[pa.Field]:
        import pyarrow as pa

        return [pa.field(f"output.{key}", _arrow_type(kinds)) for key, kinds in self._kinds.items()]

    def arrays(self, rows: Sequence[dict[str, Any] | None]) -> list[pa.Array]:
        """One array per ``fields()`` entry; a row without the key (or without an object) is
        null there."""
        import pyarrow as pa

        arrays = []
        for field, key in zip(self.fields(), self._kinds, strict=True):
            values = [row.get(key) if row else None for row in rows]
            if pa.types.is_large_string(field.type):
                values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
            arrays.append(pa.array(values, field.type))
        return arrays


def _arrow_type(kinds: set[str]) -> pa.DataType:
    import pyarrow as pa

    if kinds == {"bool"}:
        return pa.bool_()
    if kinds == {"int"}:
        return pa.int64()
    if kinds and kinds <= {"int", "float"}:
        return pa.float64()
    return pa.large_string()
