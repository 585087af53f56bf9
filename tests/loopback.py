"""What the end-to-end test suites share: a loopback stack with fake credentials in the
environment, fault knobs reset between tests, datasets of inputs in S3 with a manifest, and a
bare TCP server for the tests that play an endpoint or a proxy byte by byte."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
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


class ConnectionServer:
    """A TCP server on loopback that hands each connection to ``handle`` on a thread of its own
    (``url`` is ``http://127.0.0.1:<port>``)."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self._handle = handle
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def close(self) -> None:
        self._server.close()


def read_head(connection: socket.socket, buffer: bytes = b"") -> tuple[bytes, bytes] | None:
    """An HTTP request's head (request line and headers) and the bytes read after it, reading
    on from ``buffer``; None if the peer closed the connection first."""
    while b"\r\n\r\n" not in buffer:
        chunk = connection.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest
