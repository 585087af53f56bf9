"""What the end-to-end test suites share: a loopback stack with fake credentials in the
environment, fault knobs reset between tests, and datasets of inputs in S3 with a manifest."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from bulkinvoke.emulator import EmulatorConfig, EndpointSpec, LocalStack, start_local_stack
from bulkinvoke.emulator.tls import TlsFiles

WORKERS = 8


def serve_stack(
    endpoints: list[EndpointSpec],
    credentials: dict[str, str],
    input_bucket: str,
    tls: TlsFiles | None = None,
) -> Iterator[LocalStack]:
    """A session's stack, with ``credentials`` in os.environ while it runs (for boto3 clients
    made in the test process) and ``input_bucket`` created; with ``tls``, HTTPS only."""
    saved = {k: os.environ.get(k) for k in credentials}
    os.environ.update(credentials)
    try:
        config = EmulatorConfig(
            workers=WORKERS,
            credentials={credentials["AWS_ACCESS_KEY_ID"]: credentials["AWS_SECRET_ACCESS_KEY"]},
        )
        with start_local_stack(endpoints, config, tls=tls) as local:
            s3_client(local).create_bucket(Bucket=input_bucket)
            yield local
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def reset_faults(stack: LocalStack, **more: Any) -> None:
    """The stack's fault knobs (and its workers) back at their defaults."""
    stack.configure(
        workers=WORKERS,
        latency=EmulatorConfig().latency,
        capacity_per_second=None,
        unavailable_probability=0.0,
        internal_failure_probability=0.0,
        model_failure_probability=0.0,
        **more,
    )


def s3_client(stack: LocalStack) -> Any:
    verify = str(stack.tls.ca_bundle) if stack.tls is not None else None
    return boto3.client("s3", endpoint_url=stack.s3_url, region_name="us-east-1", verify=verify)


@dataclass
class Dataset:
    manifest: Path
    locations: list[str]


def upload_dataset(s3: Any, bucket: str, directory: Path, n: int, *, missing: int = 0) -> Dataset:
    """n inputs under a fresh prefix of ``bucket`` (the last ``missing`` of them never
    uploaded), and a CSV manifest of them in ``directory``."""
    prefix = f"data-{uuid.uuid4().hex[:8]}"
    locations = []
    for i in range(n):
        key = f"{prefix}/item-{i:06d}.json"
        if i < n - missing:
            s3.put_object(Bucket=bucket, Key=key, Body=f'{{"i": {i}}}'.encode())
        locations.append(f"s3://{bucket}/{key}")
    manifest = directory / f"{prefix}.csv"
    manifest.write_text("input_location\n" + "\n".join(locations) + "\n")
    return Dataset(manifest, locations)
