"""S3 locations as the endpoint reports them: ``s3://bucket/key`` (or an https:// S3 URL), the
arguments every S3 call of a run shares, and what is under a prefix."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from bulkinvoke.aws_protocols import S3Client


class S3Location(NamedTuple):
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def directory(self) -> str:
        """The key prefix up to and including the last ``/`` (empty at the bucket's top)."""
        slash = self.key.rfind("/")
        return self.key[: slash + 1]


def parse_s3_uri(uri: str) -> S3Location:
    """``s3://b/k`` -> (b, k); virtual-hosted and path-style https:// URLs are understood too."""
    if uri.startswith("s3://"):
        bucket, _, key = uri[5:].partition("/")
        if not bucket:
            raise ValueError(f"not an S3 URI: {uri!r}")
        return S3Location(bucket, key)
    if uri.startswith("https://"):
        parts = urlsplit(uri)
        host = parts.hostname or ""
        path = unquote(parts.path.lstrip("/"))
        if ".s3." in host or host.startswith("s3."):
            if host.startswith("s3.") or host.startswith("s3-"):
                bucket, _, key = path.partition("/")
                return S3Location(bucket, key)
            return S3Location(host.split(".s3.", 1)[0], path)
    raise ValueError(f"not an S3 URI: {uri!r}")


def bucket_owner_args(expected_bucket_owner: str | None) -> dict[str, str]:
    """The keyword arguments that make an S3 call check the bucket's owner (none if unset)."""
    return {"ExpectedBucketOwner": expected_bucket_owner} if expected_bucket_owner else {}


def list_prefix(s3: S3Client, uri: str, owner_args: dict[str, str]) -> dict[str, str]:
    """Key (relative to the prefix) -> ETag (unquoted) of every object under ``uri``."""
    target = parse_s3_uri(uri)
    found: dict[str, str] = {}
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=target.bucket, Prefix=target.key, **owner_args
    )
    for page in pages:
        for item in page.get("Contents", []):
            found[item["Key"][len(target.key) :]] = item["ETag"].strip('"')
    return found
