"""What a worker does with one job: read the input, run the model handler, write the result."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from botocore.exceptions import ClientError

from bulkinvoke.emulator.clients import Clients
from bulkinvoke.emulator.config import EmulatorConfig, EndpointSpec
from bulkinvoke.emulator.faults import Faults
from bulkinvoke.emulator.handlers import load_handler
from bulkinvoke.emulator.jobs import Job, object_address
from bulkinvoke.emulator.notifications import Notifier, inference_result
from bulkinvoke.emulator.stats import Stats
from bulkinvoke.errors import error_code

DEFAULT_OUTPUT_CONTENT_TYPE = "application/octet-stream"
# How often a job waiting for its endpoint's first instance looks again.
_SCALE_UP_POLL_SECONDS = 0.05


class _Abandoned(Exception):
    """The emulator is stopping: drop the job, as a terminated instance would."""


class _JobFailed(Exception):
    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


def _scaled(seconds: int, config: EmulatorConfig) -> str:
    if config.time_scale == 1.0:
        return f"{seconds}s"
    return f"{seconds}s, {seconds * config.time_scale:g}s at time_scale {config.time_scale:g}"


class Processor:
    def __init__(
        self,
        *,
        config: Callable[[], EmulatorConfig],
        clients: Clients,
        faults: Faults,
        stats: Stats,
        notifier: Notifier,
        stopping: threading.Event,
        endpoint: Callable[[str], EndpointSpec | None],
    ) -> None:
        self._config = config
        self._endpoint = endpoint
        self._clients = clients
        self._faults = faults
        self._stats = stats
        self._notifier = notifier
        self._stopping = stopping

    def process(self, job: Job) -> None:
        config = self._config()
        try:
            payload, content_type = self._run(job, config)
        except _JobFailed as failure:
            self._fail(job, config, failure)
            return
        except _Abandoned:
            return
        bucket, key = object_address(job.output_location)
        self._clients.s3().put_object(
            Bucket=bucket, Key=key, Body=payload, ContentType=content_type
        )
        self._stats.count("completed", job.request.endpoint_name)
        if job.endpoint.success_topic is not None:
            message = inference_result(
                job, region=config.region, event_time=time.time(), content_type=content_type
            )
            self._notifier.publish(job.endpoint.success_topic, message)

    def _waits_for_instance(self, job: Job) -> bool:
        spec = self._endpoint(job.request.endpoint_name)
        return spec is not None and spec.instances == 0 and spec.scale_up_seconds is not None

    def _run(self, job: Job, config: EmulatorConfig) -> tuple[bytes, str]:
        request = job.request
        while self._waits_for_instance(job):
            self._sleep(_SCALE_UP_POLL_SECONDS)
        started = time.monotonic()
        waited = started - job.received_clock
        if waited > request.request_ttl_seconds * config.time_scale:
            raise _JobFailed(
                f"Request expired: it waited {waited:.3f}s in the queue, longer than "
                f"RequestTTLSeconds ({_scaled(request.request_ttl_seconds, config)}).",
                expired=True,
            )
        body = request.body if request.body is not None else self._read_input(job)
        timeout = request.invocation_timeout_seconds * config.time_scale
        timed_out = _JobFailed(
            "Invocation timed out: the model took longer than InvocationTimeoutSeconds "
            f"({_scaled(request.invocation_timeout_seconds, config)}).",
            expired=True,
        )
        # ModelLatency: the model's own time, without the input's download.
        model_started = time.monotonic()
        latency = self._faults.latency(config.latency)
        if latency > timeout:
            self._sleep(timeout)
            raise timed_out
        self._sleep(latency)
        if self._faults.model_fails(config.model_failure_probability):
            raise _JobFailed("ModelError: injected model failure (model_failure_probability).")
        try:
            result = load_handler(job.endpoint.handler)(body, job.handler_request())
        except Exception as exc:
            raise _JobFailed(f"ModelError: {type(exc).__name__}: {exc}") from exc
        finished = time.monotonic()
        if finished - started > timeout:
            raise timed_out
        self._stats.model_time(request.endpoint_name, finished - model_started)
        payload, content_type = (
            result
            if isinstance(result, tuple)
            else (result, request.accept or DEFAULT_OUTPUT_CONTENT_TYPE)
        )
        if not isinstance(payload, bytes):
            raise _JobFailed(
                f"ModelError: the handler returned {type(payload).__name__}, not bytes"
            )
        return payload, content_type

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._stopping.wait(seconds):
            raise _Abandoned

    def _read_input(self, job: Job) -> bytes:
        location = job.request.input_location
        assert location is not None
        try:
            bucket, key = object_address(location)
            response = self._clients.s3().get_object(Bucket=bucket, Key=key)
        except ValueError as exc:
            raise _JobFailed(f"ClientError: {exc}") from exc
        except ClientError as exc:
            code = error_code(exc) or "Unknown"
            raise _JobFailed(
                f"ClientError: could not read the input at {location} ({code})."
            ) from exc
        body: bytes = response["Body"].read()
        return body

    def _fail(self, job: Job, config: EmulatorConfig, failure: _JobFailed) -> None:
        if job.failure_location is not None:
            bucket, key = object_address(job.failure_location)
            self._clients.s3().put_object(
                Bucket=bucket, Key=key, Body=failure.reason.encode(), ContentType="text/plain"
            )
        endpoint = job.request.endpoint_name
        self._stats.count("failed", endpoint)
        if failure.expired:
            self._stats.count("expired", endpoint)
        if job.endpoint.error_topic is not None:
            message = inference_result(
                job,
                region=config.region,
                event_time=time.time(),
                failure_reason=failure.reason,
            )
            self._notifier.publish(job.endpoint.error_topic, message)
