"""Tables from the ledger: Parquet, CSV or JSON Lines, chosen by the output file's extension.

The table is ``read_ledger``'s, held in memory (about what ``status`` needs for the ledger) and
written in chunks; ``with_output`` adds each succeeded item's output body (``export_outputs``),
downloaded chunk by chunk so that the bodies in memory stay within a fixed budget. The only
paths written are the file named and hidden temporary files beside it; the file appears by a
rename once it is complete, so a failed or interrupted export leaves no partial file behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.errors import ExportError
from bulkinvoke.export.writers import table_writer, write_all
from bulkinvoke.states import State

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bulkinvoke.calls.aws import AwsSettings
    from bulkinvoke.export.outputs import Downloader, JsonColumns

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl"}
# Large enough that the cost per write vanishes, small enough to bound the text JSON Lines
# holds at once.
PLAIN_CHUNK_ROWS = 65_536
OUTPUT_CHUNK_ROWS = 1000
# Bodies held at once, estimated from the sizes the ledger recorded for them.
OUTPUT_CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ExportResult:
    """Rows written; with outputs, how many bodies were read, could not be read, or were cut at
    the size cap; with ``expand_json``, how many ``output.<key>`` columns there are and
    whether keys beyond the cap were left out."""

    rows: int
    outputs: int = 0
    output_errors: int = 0
    truncated: int = 0
    json_columns: int = 0
    json_columns_capped: bool = False


def export_table(
    run_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    states: list[str] | None = None,
    with_output: bool = False,
    expand_json: bool = False,
    aws: AwsSettings | None = None,
    s3_client: S3Client | None = None,
) -> ExportResult:
    """Write ``read_ledger``'s table (only the rows in ``states``, if given) to ``output``.

    ``with_output`` (implied by ``expand_json``) adds the output bodies, fetched with the run's
    saved AWS settings, each field that ``aws`` sets replacing the saved one, or with
    ``s3_client`` if given. Several run directories (the shards of one run) export as one
    table of their union, sorted by row; the first one's AWS settings fetch the outputs."""
    from bulkinvoke.export.frame import read_ledger

    runs = [Path(run_dir)] if isinstance(run_dir, str | os.PathLike) else list(map(Path, run_dir))
    output = Path(output)
    kind = FORMATS.get(output.suffix.lower())
    if kind is None:
        raise ExportError(f"{output}: the file name must end in .parquet, .csv or .jsonl")
    wanted = _state_values(states or [])
    for run in runs:
        _check_target(run, output)
    table = _arrow_table(read_ledger(runs[0] if len(runs) == 1 else runs), wanted)
    if not (with_output or expand_json):
        with _replacing(output) as sink:
            write_all(table_writer(kind, sink, table.schema), _slices(table, PLAIN_CHUNK_ROWS))
        return ExportResult(table.num_rows)

    from bulkinvoke.calls.aws import make_clients
    from bulkinvoke.export.outputs import DOWNLOAD_THREADS, Downloader

    settings = _saved_settings(runs[0])
    if aws is not None:
        settings = settings.merged_with(aws)
    if s3_client is None:
        s3_client = make_clients(settings, max_connections=DOWNLOAD_THREADS).s3
    with (
        Downloader(s3_client, expected_bucket_owner=settings.expected_bucket_owner) as downloader,
        _replacing(output) as sink,
    ):
        return _export_with_outputs(table, kind, output, sink, downloader, expand_json)


def _state_values(names: list[str]) -> list[str]:
    values = []
    for name in names:
        try:
            values.append(State(name.lower()).value)
        except ValueError:
            choices = ", ".join(s.value for s in State)
            raise ExportError(f"unknown state {name!r}: choose from {choices}") from None
    return values


def _check_target(run_dir: Path, output: Path) -> None:
    from bulkinvoke.ledger.files import EVENTS_DIR, PLAN_NAME

    if output.is_dir():
        raise ExportError(f"{output} is a directory: name a file")
    run, target = run_dir.resolve(), output.resolve()
    if target == run / PLAN_NAME or target.is_relative_to(run / EVENTS_DIR):
        raise ExportError(f"{output} would replace a file of the run's ledger: name another file")


def _arrow_table(frame: pd.DataFrame, states: list[str]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    # from_pandas keeps pandas' dtypes in the schema, so a Parquet export reads back as
    # read_ledger's frame (nullable integers included).
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if states:
        table = table.filter(pc.is_in(table["state"], pa.array(states)))
    return table


def _saved_settings(run_dir: Path) -> AwsSettings:
    """The AWS settings the run was made with; refused for a ``--local`` run, whose outputs
    were in the emulator that ended with its command."""
    from bulkinvoke.calls.aws import AwsSettings
    from bulkinvoke.ledger.store import Ledger

    with Ledger.open(run_dir, writable=False) as ledger:
        if ledger.config.get("local"):
            raise ExportError(
                f"{run_dir} is a --local run: its outputs were in the emulator that ended with "
                "its submit, so --with-output has none to read; export without it"
            )
        return AwsSettings.from_config(ledger.config.get("options", {}).get("aws") or {})


def _slices(table: pa.Table, rows: int) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows)


def _export_with_outputs(
    table: pa.Table,
    kind: str,
    output: Path,
    sink: IO[bytes],
    downloader: Downloader,
    expand_json: bool,
) -> ExportResult:
    import pyarrow.parquet as pq

    from bulkinvoke.export.outputs import JsonColumns, OutputTally, output_schema, with_outputs

    tally = OutputTally()
    chunks = with_outputs(
        table, downloader, max_rows=OUTPUT_CHUNK_ROWS, max_bytes=OUTPUT_CHUNK_BYTES
    )
    schema = output_schema(table.schema)
    if not expand_json:
        write_all(table_writer(kind, sink, schema), chunks, tally.add)
        return ExportResult(table.num_rows, tally.outputs, tally.errors, tally.truncated)
    # Every chunk of a file has the same columns, and the JSON keys are known only once every
    # output has been read: the chunks wait in a spool file beside the output, not in memory.
    columns = JsonColumns()
    with _temporary(output, "spool") as (spool_path, spool):
        write_all(pq.ParquetWriter(spool, schema), chunks, tally.add, columns.observe_chunk)
        spool.flush()
        with pq.ParquetFile(spool_path) as spooled:
            write_all(table_writer(kind, sink, columns.schema(schema)), _expanded(spooled, columns))
    return ExportResult(
        table.num_rows,
        tally.outputs,
        tally.errors,
        tally.truncated,
        json_columns=len(columns),
        json_columns_capped=columns.capped,
    )


def _expanded(spooled: pq.ParquetFile, columns: JsonColumns) -> Iterator[pa.Table]:
    from bulkinvoke.export.outputs import expanded

    # Each row group is one chunk as written to the spool: one at a time bounds memory.
    for index in range(spooled.num_row_groups):
        yield expanded(spooled.read_row_group(index), columns)


@contextmanager
def _temporary(beside: Path, label: str) -> Iterator[tuple[Path, IO[bytes]]]:
    """A new hidden file in ``beside``'s directory, removed on exit unless renamed by then."""
    path = beside.with_name(f".{beside.name}.{secrets.token_hex(4)}.{label}")
    try:
        beside.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: never follow a link or reuse a file someone else put there.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except (FileExistsError, NotADirectoryError):
        # mkdir met a file where a directory of the path should be.
        raise ExportError(f"cannot write {beside}: a part of its path is a file") from None
    except OSError as error:
        raise ExportError(f"cannot write {beside}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            yield path, file
    except OSError as error:
        raise ExportError(f"cannot write {beside}: {error.strerror or error}") from None
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def _replacing(output: Path) -> Iterator[IO[bytes]]:
    """A file that becomes ``output`` when the block ends without an error."""
    with _temporary(output, "tmp") as (path, file):
        yield file
        file.flush()
        os.fsync(file.fileno())
        os.replace(path, output)
