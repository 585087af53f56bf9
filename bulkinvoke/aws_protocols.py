"""What bulkinvoke calls on AWS clients, as Protocols.

boto3 makes its service clients from JSON models at run time, so they have no static type; these
Protocols name the few operations bulkinvoke uses. A botocore client satisfies them, and so do
the direct transport (``calls/transport.py``) and the fakes the unit tests pass in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

# A decoded service response: botocore's parsed dict.
Response = dict[str, Any]


class EventHooks(Protocol):
    def register(self, event_name: str, handler: Callable[..., Any]) -> None: ...


class ClientMeta(Protocol):
    @property
    def events(self) -> EventHooks: ...


class RuntimeClient(Protocol):
    """``sagemaker-runtime``: a botocore client or the direct transport."""

    @property
    def meta(self) -> ClientMeta: ...

    def invoke_endpoint_async(self, **parameters: Any) -> Response: ...


class Paginator(Protocol):
    def paginate(self, **parameters: Any) -> Iterable[Response]: ...


class S3Client(Protocol):
    # The modeled error classes (NoSuchKey, ...), made from the service model at run time.
    @property
    def exceptions(self) -> Any: ...

    def list_objects_v2(self, **parameters: Any) -> Response: ...

    def get_object(self, **parameters: Any) -> Response: ...

    def put_object(self, **parameters: Any) -> Response: ...

    def head_object(self, **parameters: Any) -> Response: ...

    def delete_objects(self, **parameters: Any) -> Response: ...

    def head_bucket(self, **parameters: Any) -> Response: ...

    def create_bucket(self, **parameters: Any) -> Response: ...

    def get_paginator(self, operation_name: str) -> Paginator: ...


class SageMakerClient(Protocol):
    """``sagemaker``, the control plane: what is read of the endpoint before a run."""

    def describe_endpoint(self, **parameters: Any) -> Response: ...

    def describe_endpoint_config(self, **parameters: Any) -> Response: ...


class SqsClient(Protocol):
    def receive_message(self, **parameters: Any) -> Response: ...

    def delete_message_batch(self, **parameters: Any) -> Response: ...


class SnsClient(Protocol):
    def create_topic(self, **parameters: Any) -> Response: ...

    def publish(self, **parameters: Any) -> Response: ...


class CloudWatchClient(Protocol):
    """``cloudwatch``: the endpoint's backlog and latency, read while a run goes on (and, in the
    emulator, published)."""

    def get_metric_data(self, **parameters: Any) -> Response: ...

    def put_metric_data(self, **parameters: Any) -> Response: ...
