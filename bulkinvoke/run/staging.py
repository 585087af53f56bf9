"""``submit RECORDS --stage s3://bucket/prefix/``: records (JSON Lines or Parquet) made into a
manifest by putting each payload in S3 at its content address (``calls/staging.py``), before the
run is planned. A resumed or repeated submit uploads nothing already there, and the manifest it
makes is the same (same records, same stage: same fingerprint), so it continues the same run.
Identical payloads are one object, hence one call (the other rows are the manifest's
duplicates, exported with the result of the row they repeat)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.calls.staging import already_staged, stage_payloads, staged_locations
from bulkinvoke.errors import StoppedError, UsageError
from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.ledger.files import RECORDS_NAME, write_durably
from bulkinvoke.ledger.views import EXPORT_COLUMNS
from bulkinvoke.manifest.loader import Manifest, validate
from bulkinvoke.manifest.records import Records, read_records
from bulkinvoke.manifest.rows import RawRows, fingerprint
from bulkinvoke.s3uri import bucket_owner_args

if TYPE_CHECKING:
    from pathlib import Path


class StagingError(StoppedError):
    """Payloads could not be put in S3 (no such bucket, access denied); nothing was sent."""


@dataclass
class StagedRecords:
    """A manifest made of records: each row's input location is its payload's content address."""

    manifest: Manifest
    records: Records
    keys: list[str | None]


def records_manifest(source: str, stage: str, payload_column: str | None) -> StagedRecords:
    """The manifest of ``source``'s records as staged under ``stage`` (nothing is uploaded yet:
    the rows are checked first, and a shard uploads only its own)."""
    if source.startswith("s3://"):
        raise UsageError("--stage reads a local records file (JSON Lines or Parquet), not s3://")
    records = read_records(source, payload_column)
    keys = [None if p is None else records.staged_key(i) for i, p in enumerate(records.payloads)]
    locations = staged_locations(stage, keys)  # ``stage`` was checked with the options
    raw = RawRows(records.unit, records.starts, locations, {}, records.broken)
    # The stage is part of what the run is: the same records staged elsewhere are another run.
    digest = fingerprint(f"{records.digest}\0stage={stage.rstrip('/')}/".encode())
    manifest = validate(raw, source, digest)
    if records.columns.num_columns:
        manifest.record_columns = records.columns
    return StagedRecords(manifest, records, keys)


@dataclass(frozen=True)
class StagingCount:
    payloads: int  # distinct payloads of the rows sent
    staged_already: int  # of them, found under the stage before this staging


def upload_payloads(
    staged: StagedRecords,
    manifest: Manifest,
    stage: str,
    s3: S3Client,
    subscribers: Subscribers,
    *,
    concurrency: int,
    expected_bucket_owner: str | None,
    upload: bool,
) -> StagingCount:
    """Put the payloads of ``manifest``'s rows (``staged.manifest``, or a shard of it) under the
    stage; ``upload=False`` (the dry run) only counts those already there."""
    from botocore.exceptions import BotoCoreError, ClientError

    wanted = {row - 1 for row in manifest.table.column("row").to_pylist()}
    keys = [key if i in wanted else None for i, key in enumerate(staged.keys)]
    owner_args = bucket_owner_args(expected_bucket_owner)
    payloads = staged.records.payloads
    distinct = len({key for key in keys if key is not None})
    try:
        if upload:
            done = stage_payloads(
                s3,
                stage,
                keys,
                lambda i: payloads[i] or b"",
                concurrency=concurrency,
                owner_args=owner_args,
            )
            present = done.present
            said = (
                f"staged {done.uploaded} payload(s) ({done.uploaded_bytes:,} bytes) under "
                f"{stage}; {present} were there already"
            )
        else:
            present = already_staged(s3, stage, keys, owner_args)
            said = f"{present} of {distinct} payloads are staged under {stage} already"
    except (ClientError, BotoCoreError) as error:
        raise StagingError(f"cannot stage the payloads under {stage}: {error}") from None
    subscribers.notice(NoticeLevel.INFO, said)
    return StagingCount(distinct, present)


def keep_record_columns(run_dir: Path, manifest: Manifest) -> None:
    """Write the records' other columns beside the plan (once), for the export to join."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = manifest.record_columns
    path = run_dir / RECORDS_NAME
    if columns is None or path.exists():
        return
    # A record's own column named like one of the export's keeps its values under another name.
    taken = {"row", *EXPORT_COLUMNS, "duplicate_of", "output"}
    columns = columns.rename_columns(
        [f"record_{name}" if name in taken else name for name in columns.column_names]
    )
    rows = pa.array(range(1, columns.num_rows + 1), pa.int64())
    table = columns.add_column(0, "row", rows)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_durably(path, sink.getvalue())
