"""The files of a mirrored ledger in S3: listing a prefix, and downloading a run from it."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.errors import MirrorError, error_code
from bulkinvoke.ledger.files import (
    CONFIG_NAME,
    EVENTS_DIR,
    PLAN_COMPANIONS,
    PLAN_NAME,
    read_config,
    write_durably,
)
from bulkinvoke.s3uri import bucket_owner_args, list_prefix, parse_s3_uri

if TYPE_CHECKING:
    from bulkinvoke.calls.aws import AwsSettings

EVENT_NAME = re.compile(rf"{EVENTS_DIR}/([bc])-(\d{{12}})\.parquet")
_DOWNLOAD_ATTEMPTS = 5


def mirror_client(run_dir: Path, overrides: AwsSettings | None) -> tuple[S3Client, dict[str, str]]:
    """An S3 client (and the ExpectedBucketOwner arguments) for the mirror of ``run_dir``: the
    run's saved AWS settings if the run is here, else the environment's, each field that
    ``overrides`` sets replacing the saved one."""
    from bulkinvoke.calls.aws import AwsSettings, make_clients

    path = run_dir / CONFIG_NAME
    saved = read_config(path).get("options", {}).get("aws") if path.is_file() else None
    settings = AwsSettings.from_config(saved or {}).merged_with(overrides or AwsSettings())
    owner = settings.expected_bucket_owner
    return make_clients(settings).s3, bucket_owner_args(owner)


def md5_hex(data: bytes) -> str:
    """The MD5 the mirror compares contents by (an S3 ETag is one only for some uploads)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def last_seq(names: Iterable[str]) -> int:
    return max((int(m[2]) for n in names if (m := EVENT_NAME.fullmatch(n))), default=0)


def download_run(
    s3: S3Client, uri: str, run_dir: Path, owner_args: dict[str, str]
) -> dict[str, str]:
    """Copy the run mirrored at ``uri`` into ``run_dir``: the plan, the files the reader rule
    needs, then run.json (so that a download cut short leaves no run). Returns the MD5 of each
    file copied, by key; an empty dict if ``uri`` holds no run."""
    target = parse_s3_uri(uri)
    for _ in range(_DOWNLOAD_ATTEMPTS):
        listing = list_prefix(s3, uri, owner_args)
        if CONFIG_NAME not in listing:
            return {}
        (run_dir / EVENTS_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(run_dir, 0o700)
        copied: dict[str, str] = {}
        try:
            extra = [name for name in PLAN_COMPANIONS if name in listing]
            for name in [PLAN_NAME, *extra, *needed_events(listing), CONFIG_NAME]:
                response = s3.get_object(Bucket=target.bucket, Key=target.key + name, **owner_args)
                data = response["Body"].read()
                write_durably(run_dir / name, data)
                copied[name] = md5_hex(data)
        except ClientError as error:
            if error_code(error) != "NoSuchKey":
                raise
            continue  # a writer compacted meanwhile and removed a file: list again
        return copied
    raise MirrorError(f"{uri} kept changing while it was downloaded")


def needed_events(names: Iterable[str]) -> list[str]:
    """The newest c- file and the b- files after it, in seq order: the ledger's reader rule."""
    found = sorted((int(m[2]), m[1], n) for n in names if (m := EVENT_NAME.fullmatch(n)))
    cut = max((seq for seq, kind, _ in found if kind == "c"), default=0)
    return [name for seq, kind, name in found if seq > cut or (seq == cut and kind == "c")]
