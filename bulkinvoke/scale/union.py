"""One report and one table from several run directories: the shards of one run.

Shards hold disjoint rows of one manifest under its own row numbers, so their union is the run
one machine would have made: each shard's latest attempts are concatenated and sorted by row,
then reported and exported exactly as a single run's are. Runs that cannot be parts of one run
(other manifests, endpoints or request options, the same shard twice, overlapping rows) are
refused. S3 ledger prefixes (``--ledger-uri``) are downloaded to a temporary directory first.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.errors import MergeError
from bulkinvoke.ledger.files import CONFIG_NAME, PLAN_NAME
from bulkinvoke.ledger.identity import REQUEST_DEFINING_OPTIONS
from bulkinvoke.scale.shards import Shard

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from bulkinvoke.calls.aws import AwsSettings


def merged_latest(
    run_dirs: Sequence[str | os.PathLike[str]],
    plan_columns: list[str],
    *,
    duplicates: bool = False,
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """``Ledger.latest`` of every run (``with_duplicates`` if ``duplicates``), as one table sorted
    by row, and the runs' configs. ``plan_columns`` missing from a run's plan are left out of its
    part (null in the union)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bulkinvoke.ledger.store import Ledger
    from bulkinvoke.ledger.views import with_duplicates

    tables, configs = [], []
    for run_dir in map(Path, run_dirs):
        with Ledger.open(run_dir, writable=False) as ledger:
            names = pq.read_schema(run_dir / PLAN_NAME).names
            latest = ledger.latest([name for name in plan_columns if name in names])
            tables.append(with_duplicates(latest, ledger.duplicates()) if duplicates else latest)
            configs.append(ledger.config)
    check_parts(list(map(Path, run_dirs)), configs)
    table = pa.concat_tables(tables, promote_options="default").sort_by("row")
    rows = table["row"].to_numpy()
    repeated = np.flatnonzero(np.diff(rows) == 0)
    if repeated.size:
        raise MergeError(
            f"row {rows[repeated[0]]} is in more than one of these runs: they overlap (a run "
            "and one of its shards, or two runs of the same rows)"
        )
    return table, configs


def check_parts(run_dirs: list[Path], configs: list[dict[str, Any]]) -> None:
    first, first_dir = configs[0], run_dirs[0]
    fingerprint = first["manifest"]["fingerprint"]
    shards = [Shard.from_config(config.get("shard")) for config in configs]
    seen: dict[int, Path] = {}
    for run_dir, config, shard in zip(run_dirs, configs, shards, strict=True):
        if config["manifest"]["fingerprint"] != fingerprint:
            raise MergeError(f"{run_dir} and {first_dir} are runs of different manifests")
        for name in REQUEST_DEFINING_OPTIONS:
            if config["options"].get(name) != first["options"].get(name):
                raise MergeError(
                    f"{run_dir} and {first_dir} differ in {name.replace('_', '-')}: they are "
                    "not parts of one run"
                )
        first_shard = shards[0]
        if (shard is None) != (first_shard is None) or (
            shard and first_shard and shard.count != first_shard.count
        ):
            raise MergeError(
                f"{run_dir} and {first_dir} are not shards of the same split of the manifest"
            )
        if shard is not None:
            if shard.index in seen:
                raise MergeError(f"{seen[shard.index]} and {run_dir} are both shard {shard}")
            seen[shard.index] = run_dir


def read_ledgers(run_dirs: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """``read_ledger`` of the union of several runs (shards): one row per manifest row."""
    from bulkinvoke.ledger.views import export_frame

    table, _ = merged_latest(run_dirs, ["input_location"], duplicates=True)
    return export_frame(table)


@contextmanager
def local_runs(sources: Sequence[str], aws: AwsSettings | None = None) -> Iterator[list[Path]]:
    """Each source as local run directories: a directory as it is; an ``s3://`` prefix as
    every run mirrored under it (each shard of a ``--ledger-uri``), downloaded into a private
    temporary directory that is removed afterwards."""
    with ExitStack() as stack:
        s3, temp = None, Path()
        found: list[Path] = []
        for number, source in enumerate(sources):
            if not source.startswith("s3://"):
                found.append(Path(source))
                continue
            if s3 is None:
                from bulkinvoke.calls.aws import AwsSettings, make_clients

                s3 = make_clients(aws or AwsSettings()).s3
                # Only now: reading local runs writes nothing anywhere.
                temp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bulkinvoke-")))
            found.extend(_download_runs(s3, source, temp / str(number), aws))
        yield found


def _download_runs(s3: S3Client, source: str, target: Path, aws: AwsSettings | None) -> list[Path]:
    from botocore.exceptions import BotoCoreError, ClientError

    from bulkinvoke.errors import MirrorError
    from bulkinvoke.s3uri import bucket_owner_args, list_prefix
    from bulkinvoke.scale.mirror_files import download_run

    prefix = source if source.endswith("/") else source + "/"
    owner = aws.expected_bucket_owner if aws else None
    owner_args = bucket_owner_args(owner)
    try:
        names = list_prefix(s3, prefix, owner_args)
        runs = sorted(
            name[: -len(CONFIG_NAME)]
            for name in names
            if name == CONFIG_NAME or name.endswith("/" + CONFIG_NAME)
        )
        dirs = []
        for number, run in enumerate(runs):
            run_dir = target / str(number)
            if download_run(s3, prefix + run, run_dir, owner_args):
                dirs.append(run_dir)
    except (ClientError, BotoCoreError, ValueError) as error:
        raise MirrorError(f"cannot read {source}: {error}") from error
    if not dirs:
        raise MirrorError(f"{source} holds no bulkinvoke ledger (no run.json under it)")
    return dirs
