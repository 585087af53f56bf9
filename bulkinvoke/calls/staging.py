"""Payloads put in S3 at content addresses (``<stage>/<sha256>.<ext>``), so that each becomes an
input location: a payload already there (an earlier, interrupted staging, or the same payload
in another record) is not uploaded again. What is there is learned by listing the stage prefix
once (one request per 1,000 objects), not by asking for each object."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.s3uri import list_prefix, parse_s3_uri


@dataclass(frozen=True)
class Staged:
    locations: list[str]  # one per record ("" for a record without a payload)
    uploaded: int  # objects put by this staging
    present: int  # distinct payloads found already staged
    uploaded_bytes: int


def stage_prefix(stage_uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ("bucket", "some/prefix/"); ValueError if not S3."""
    if not stage_uri.startswith("s3://"):
        raise ValueError(f"--stage must be an s3://bucket/prefix/ location, not {stage_uri!r}")
    location = parse_s3_uri(stage_uri.rstrip("/") + "/")
    return location.bucket, location.key


def staged_locations(stage_uri: str, keys: Sequence[str | None]) -> list[str]:
    """Where each payload (named by its content address, None for none) is staged."""
    bucket, prefix = stage_prefix(stage_uri)
    return [f"s3://{bucket}/{prefix}{key}" if key else "" for key in keys]


def stage_payloads(
    s3: S3Client,
    stage_uri: str,
    keys: Sequence[str | None],
    payload: Callable[[int], bytes],
    *,
    concurrency: int,
    owner_args: dict[str, str],
) -> Staged:
    """Upload the payload of each record whose content address (``keys[i]``) is not staged yet;
    ``payload(i)`` gives record i's bytes."""
    bucket, prefix = stage_prefix(stage_uri)
    present = list_prefix(s3, f"s3://{bucket}/{prefix}", owner_args)
    first_of: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key is not None and key not in present:
            first_of.setdefault(key, index)

    def upload(item: tuple[str, int]) -> int:
        key, index = item
        body = payload(index)
        s3.put_object(Bucket=bucket, Key=prefix + key, Body=body, **owner_args)
        return len(body)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        sizes = list(pool.map(upload, first_of.items()))
    distinct = {key for key in keys if key is not None}
    return Staged(
        staged_locations(stage_uri, keys),
        uploaded=len(sizes),
        present=len(distinct) - len(sizes),
        uploaded_bytes=sum(sizes),
    )


def already_staged(
    s3: S3Client, stage_uri: str, keys: Sequence[str | None], owner_args: dict[str, str]
) -> int:
    """How many distinct payloads of ``keys`` are staged already (for the dry run)."""
    bucket, prefix = stage_prefix(stage_uri)
    present = list_prefix(s3, f"s3://{bucket}/{prefix}", owner_args)
    return len({key for key in keys if key is not None} & present.keys())
