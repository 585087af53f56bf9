"""The async inference service behind the HTTP front: endpoints, the accept path, the queue.

The accept path (``invoke``) only validates, draws the call-time faults and enqueues; all S3
work happens in the workers, except the HEAD of the input that ``missing_input="reject"`` asks
for.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from bulkinvoke.emulator.clients import Clients
from bulkinvoke.emulator.config import EmulatorConfig, EndpointSpec, split_s3_uri
from bulkinvoke.emulator.control import control_error, handle_control
from bulkinvoke.emulator.faults import Faults
from bulkinvoke.emulator.handlers import load_handler
from bulkinvoke.emulator.jobs import new_job, object_address
from bulkinvoke.emulator.metrics import MetricsPublisher
from bulkinvoke.emulator.notifications import Notifier
from bulkinvoke.emulator.processing import Processor
from bulkinvoke.emulator.sigv4 import SignatureError, verify
from bulkinvoke.emulator.stats import Stats
from bulkinvoke.emulator.wire import (
    InvocationRequest,
    ServiceError,
    internal_failure,
    parse_invocation,
    throttling_error,
    unavailable_error,
    validation_error,
)
from bulkinvoke.emulator.workers import WorkerPool
from bulkinvoke.errors import error_code

_COUNTER_OF_ERROR = {
    "ValidationError": "rejected",
    "ThrottlingException": "throttled",
    "ServiceUnavailable": "unavailable",
    "InternalFailure": "internal_failures",
    "MissingAuthenticationTokenException": "unauthenticated",
    "IncompleteSignatureException": "unauthenticated",
    "UnrecognizedClientException": "unauthenticated",
    "InvalidSignatureException": "unauthenticated",
}
_FAULT_ERRORS = {
    "throttled": throttling_error,
    "unavailable": unavailable_error,
    "internal": internal_failure,
}


@dataclass(frozen=True, slots=True)
class Accepted:
    inference_id: str
    output_location: str
    failure_location: str | None


class AsyncInferenceService:
    def __init__(self, config: EmulatorConfig, clients: Clients) -> None:
        self._config = config
        self._clients = clients
        # Replaced, never mutated, so the accept path reads it without a lock.
        self._endpoints: dict[str, EndpointSpec] = {}
        self._changes_lock = threading.Lock()
        self._stats = Stats()
        # How often each inference ID was accepted: a client that claims never to send an item
        # twice can be held to it.
        self._accepted_ids: Counter[str] = Counter()
        self._accepted_ids_lock = threading.Lock()
        self._faults = Faults(config)
        # Endpoints with no instance whose first is on its way (EndpointSpec.scale_up_seconds).
        self._scaling_up: set[str] = set()
        stopping = threading.Event()
        processor = Processor(
            config=lambda: self._config,
            clients=clients,
            faults=self._faults,
            stats=self._stats,
            notifier=Notifier(clients, self._stats),
            stopping=stopping,
            # A lambda: the dict is replaced, never mutated.
            endpoint=lambda name: self._endpoints.get(name),
        )
        self._pool = WorkerPool(processor.process, config.workers, self._stats, stopping)
        self._metrics = MetricsPublisher(
            lambda: self._config, self.endpoints, clients, self._stats, stopping
        )
        if clients.moto_url is not None:
            self._metrics.start()

    @property
    def config(self) -> EmulatorConfig:
        return self._config

    def configure(self, **changes: Any) -> EmulatorConfig:
        with self._changes_lock:
            config = self._config.with_changes(changes)
            if config.region != self._config.region:
                raise ValueError("region is fixed when the emulator starts")
            self._faults.reconfigure(config)
            self._pool.resize(config.workers)
            self._config = config
            return config

    def endpoints(self) -> list[EndpointSpec]:
        return list(self._endpoints.values())

    def add_endpoint(self, spec: EndpointSpec) -> None:
        """Declare ``spec`` (replacing one of the same name) and create its buckets and topics."""
        problems = spec.problems()
        if problems:
            raise ValueError("; ".join(problems))
        load_handler(spec.handler)
        for path in (spec.output_path, spec.failure_path):
            if path is not None:
                self._ensure_bucket(split_s3_uri(path)[0])
        for topic in (spec.success_topic, spec.error_topic):
            if topic is not None:
                self._ensure_topic(topic)
        with self._changes_lock:
            self._endpoints = {**self._endpoints, spec.name: spec}
        self._stats.add_endpoint(spec.name)

    def remove_endpoint(self, name: str) -> None:
        """Delete an endpoint, as DeleteEndpoint does: calls to it are refused from now on as for
        any unknown endpoint; calls it already accepted still finish."""
        with self._changes_lock:
            if name not in self._endpoints:
                raise ValueError(f"no endpoint named {name!r}")
            self._endpoints = {k: v for k, v in self._endpoints.items() if k != name}

    def _ensure_bucket(self, bucket: str) -> None:
        s3 = self._clients.s3()
        try:
            s3.head_bucket(Bucket=bucket)
            return
        except ClientError as exc:
            if error_code(exc) not in ("404", "NoSuchBucket"):
                raise
        region = self._config.region
        location = (
            {}
            if region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        s3.create_bucket(Bucket=bucket, **location)

    def _ensure_topic(self, arn: str) -> None:
        if self._clients.moto_url is None:
            raise ValueError(f"topic {arn} needs an SNS server, and none is configured")
        region = arn.split(":")[3] or self._config.region
        created = self._clients.sns(region).create_topic(Name=arn.rsplit(":", 1)[1])["TopicArn"]
        if created != arn:
            raise ValueError(f"topic {arn} cannot be created here: the SNS server made {created}")

    def invoke(
        self,
        endpoint_name: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        raw_path: str,
        raw_query: str = "",
    ) -> Accepted:
        """Accept one InvokeEndpointAsync call (``raw_path`` and ``raw_query`` as sent, for its
        signature) or raise the ServiceError the service would; either after the configured
        network latency (each connection has a thread of its own, so only this call waits)."""
        delay = self._faults.latency(self._config.network_latency)
        if delay > 0:
            time.sleep(delay)
        try:
            self._verify_signature(headers, body, raw_path, raw_query)
            return self._accept(endpoint_name, headers, body)
        except ServiceError as error:
            self._stats.count(_COUNTER_OF_ERROR[error.code], endpoint_name)
            raise

    def control(
        self, headers: Mapping[str, str], body: bytes, raw_path: str, raw_query: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one control-plane call (DescribeEndpoint, DescribeEndpointConfig)."""
        try:
            self._verify_signature(headers, body, raw_path, raw_query)
        except ServiceError as error:
            return control_error(error)
        return handle_control(self._endpoints, self._config, headers, body)

    def _verify_signature(
        self, headers: Mapping[str, str], body: bytes, raw_path: str, raw_query: str
    ) -> None:
        config = self._config
        try:
            verify(
                "POST",
                raw_path,
                raw_query,
                headers,
                body,
                secrets=config.credentials,
                region=config.region,
            )
        except SignatureError as error:
            raise ServiceError(403, error.code, error.message) from None

    def _accept(self, endpoint_name: str, headers: Mapping[str, str], body: bytes) -> Accepted:
        request = parse_invocation(endpoint_name, headers, body)
        config = self._config
        endpoint = self._endpoints.get(endpoint_name)
        if endpoint is None:
            raise validation_error(
                f"Endpoint {endpoint_name} of account {config.account} not found."
            )
        fault = self._faults.call_fault(config)
        if fault is not None:
            raise _FAULT_ERRORS[fault]()
        if config.missing_input == "reject" and request.input_location is not None:
            self._check_input_exists(request)
        job = new_job(request, endpoint, time.time(), time.monotonic())
        self._pool.submit(job)
        if endpoint.instances == 0 and endpoint.scale_up_seconds is not None:
            self._scale_up(endpoint)
        self._stats.count("accepted", endpoint_name)
        with self._accepted_ids_lock:
            self._accepted_ids[job.inference_id] += 1
        return Accepted(job.inference_id, job.output_location, job.failure_location)

    def _scale_up(self, endpoint: EndpointSpec) -> None:
        """Give ``endpoint`` its first instance ``scale_up_seconds`` from now, unless that is
        already on its way."""
        with self._changes_lock:
            if endpoint.name in self._scaling_up:
                return
            self._scaling_up.add(endpoint.name)
        timer = threading.Timer(
            endpoint.scale_up_seconds or 0.0, self._scaled_up, args=(endpoint.name,)
        )
        timer.daemon = True
        timer.start()

    def _scaled_up(self, name: str) -> None:
        with self._changes_lock:
            self._scaling_up.discard(name)
            spec = self._endpoints.get(name)
            if spec is not None and spec.instances == 0:
                self._endpoints = {**self._endpoints, name: replace(spec, instances=1)}

    def publish_metrics(self) -> None:
        """Publish every endpoint's CloudWatch metrics now, as well as every metrics_seconds."""
        self._metrics.publish()

    def _check_input_exists(self, request: InvocationRequest) -> None:
        location = request.input_location
        assert location is not None
        try:
            bucket, key = object_address(location)
            self._clients.s3().head_object(Bucket=bucket, Key=key)
        except (ValueError, ClientError) as exc:
            raise validation_error(
                f"Could not access the input at {location}: no such object, or not readable."
            ) from exc

    def accepted_ids(self) -> dict[str, int]:
        with self._accepted_ids_lock:
            return dict(self._accepted_ids)

    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot(
            queue_depth=self._pool.depth(),
            in_progress=self._pool.busy(),
            workers=self._pool.size(),
        )

    def wait_idle(self, timeout: float) -> bool:
        return self._pool.wait_idle(timeout)

    def stop(self) -> None:
        self._pool.stop()
