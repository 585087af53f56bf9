"""``--local``: the embedded emulator as the endpoint, so a run works with no AWS account.

It starts the local stack in this process, uploads the inputs the manifest names from a folder
beside it (``<manifest stem>-inputs/``, matched by file name), and hands back the settings that
point the run at it. Everything it holds ends with the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.calls.aws import AwsSettings, make_clients
from bulkinvoke.calls.staging import stage_prefix
from bulkinvoke.errors import RunError, UsageError
from bulkinvoke.run.staging import StagingError
from bulkinvoke.s3uri import bucket_owner_args, parse_s3_uri

LOCAL_BUCKET = "bulkinvoke-local"


class LocalInputsMissing(RunError):
    """``--local`` has nothing to upload: every item would fail."""


def default_inputs_dir(manifest: str) -> Path:
    path = Path(manifest)
    return path.with_name(f"{path.stem}-inputs")


@contextmanager
def local_endpoint(
    manifest: str,
    endpoint: str,
    *,
    inputs_dir: Path | None = None,
    expected_bucket_owner: str | None = None,
    stage: str | None = None,
) -> Iterator[AwsSettings]:
    from botocore.exceptions import ClientError

    from bulkinvoke.emulator import EndpointSpec, start_local_stack
    from bulkinvoke.manifest.loader import read_manifest

    spec = EndpointSpec(
        name=endpoint,
        output_path=f"s3://{LOCAL_BUCKET}/outputs",
        failure_path=f"s3://{LOCAL_BUCKET}/failures",
    )
    with start_local_stack([spec]) as stack:
        settings = AwsSettings(
            region="us-east-1",
            endpoint_url=stack.sagemaker_url,
            s3_endpoint_url=stack.s3_url,
            sagemaker_endpoint_url=stack.sagemaker_url,
            cloudwatch_endpoint_url=stack.cloudwatch_url,
            # The credentials the emulator hands out, and checks every call's signature with.
            static_credentials=next(iter(stack.config.credentials.items())),
            expected_bucket_owner=expected_bucket_owner,
        )
        s3 = make_clients(settings).s3
        if stage is not None:
            # The manifest holds records: their payloads are staged by the run, into the
            # emulator's S3, where only the stage's bucket has to be made.
            try:
                bucket, _ = stage_prefix(stage)
            except ValueError as error:
                raise UsageError(str(error)) from None
            try:
                _ensure_bucket(s3, bucket)
            except ClientError as error:  # a bucket name S3 refuses, as without --local
                raise StagingError(f"cannot stage the payloads under {stage}: {error}") from None
            yield settings
            return
        locations = read_manifest(
            manifest, s3_client=s3, expected_bucket_owner=expected_bucket_owner
        ).table.column("input_location")
        folder = inputs_dir or default_inputs_dir(manifest)
        uploaded = upload_inputs(
            s3, locations.to_pylist(), folder, expected_bucket_owner=expected_bucket_owner
        )
        if len(locations) and not uploaded:
            # Every item would fail with NoSuchKey: a run that can only fail is refused.
            raise LocalInputsMissing(
                f"--local found none of the manifest's {len(locations)} inputs in {folder}/ "
                "(each is matched by the last part of its key): put them there, or name their "
                "folder with --local-inputs DIR"
            )
        yield settings


def upload_inputs(
    s3: S3Client,
    locations: list[str],
    inputs_dir: Path,
    *,
    expected_bucket_owner: str | None = None,
) -> int:
    """Put each ``inputs_dir/<name>`` at the manifest location whose key ends in that name."""
    owner = bucket_owner_args(expected_bucket_owner)
    buckets: set[str] = set()
    uploaded = 0
    for location in locations:
        target = parse_s3_uri(location)
        source = inputs_dir / target.key.rsplit("/", 1)[-1]
        if not source.is_file():
            continue
        if target.bucket not in buckets:
            _ensure_bucket(s3, target.bucket)
            buckets.add(target.bucket)
        s3.put_object(Bucket=target.bucket, Key=target.key, Body=source.read_bytes(), **owner)
        uploaded += 1
    return uploaded


def _ensure_bucket(s3: S3Client, bucket: str) -> None:
    with suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
