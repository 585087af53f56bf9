"""An accepted invocation waiting for a worker, and where its output or failure will land.

Keys follow the service: the output is ``S3OutputPath[/S3OutputPathExtension]/<name>`` where
``<name>`` is the request's Filename or ``<random uuid>.out``; the failure object is
``S3FailurePath[/S3OutputPathExtension]/<stem>-error.out``, ``<stem>`` being the output name up
to its last dot. Both locations are fixed at call time and returned in the 202 response.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass
from urllib.parse import unquote

from bulkinvoke.emulator.config import EndpointSpec, join_key, split_s3_uri
from bulkinvoke.emulator.wire import InvocationRequest

_HTTPS_URI = re.compile(r"https://([^/]+)/(.*)", re.DOTALL)
_AWS_S3_HOST = re.compile(r"(?:(?P<bucket>.+)\.)?s3[.-](?:[a-z0-9-]+\.)*amazonaws\.com(?:\.cn)?")


def random_uuid() -> str:
    """A version-4 UUID; uuid4() makes a urandom system call the accept path can't afford."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


@dataclass(frozen=True, slots=True)
class Job:
    request: InvocationRequest
    endpoint: EndpointSpec
    inference_id: str
    output_location: str
    failure_location: str | None
    received_at: float  # wall clock, for notifications
    received_clock: float  # monotonic, for RequestTTLSeconds

    def handler_request(self) -> dict[str, str | None]:
        request = self.request
        return {
            "endpoint_name": request.endpoint_name,
            "inference_id": self.inference_id,
            "input_location": request.input_location,
            "content_type": request.content_type,
            "accept": request.accept,
            "custom_attributes": request.custom_attributes,
        }


def new_job(
    request: InvocationRequest, endpoint: EndpointSpec, received_at: float, received_clock: float
) -> Job:
    name = request.filename or f"{random_uuid()}.out"
    extension = request.output_path_extension
    bucket, prefix = split_s3_uri(endpoint.output_path)
    failure_location = None
    if endpoint.failure_path is not None:
        failure_bucket, failure_prefix = split_s3_uri(endpoint.failure_path)
        stem = name.rsplit(".", 1)[0]
        failure_key = join_key(failure_prefix, extension, f"{stem}-error.out")
        failure_location = f"s3://{failure_bucket}/{failure_key}"
    return Job(
        request=request,
        endpoint=endpoint,
        inference_id=request.inference_id or random_uuid(),
        output_location=f"s3://{bucket}/{join_key(prefix, extension, name)}",
        failure_location=failure_location,
        received_at=received_at,
        received_clock=received_clock,
    )


def object_address(location: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://`` URI or an ``https://`` S3 URL (path or virtual-host)."""
    if location.startswith("s3://"):
        bucket, _, key = location[5:].partition("/")
        return bucket, key
    match = _HTTPS_URI.fullmatch(location)
    host = _AWS_S3_HOST.fullmatch(match.group(1)) if match else None
    if match is None or host is None:
        raise ValueError(f"{location} is not an Amazon S3 URL")
    path = unquote(match.group(2))
    if host.group("bucket"):
        return host.group("bucket"), path
    bucket, _, key = path.partition("/")
    return bucket, key
