"""The only caller of InvokeEndpointAsync.

One call per attempt, retried under the run's :class:`~bulkinvoke.retry.RetryPolicy`; the result
is a value (accepted, rejected, failed, or "stop the run"), never an exception, so the engine
records every outcome the same way.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bulkinvoke.ids import output_filename
from bulkinvoke.limiter import RateLimiter
from bulkinvoke.options import RequestOptions
from bulkinvoke.retry import (
    ErrorClass,
    ErrorKind,
    GaveUp,
    Rejected,
    RetryPolicy,
    RunStopped,
    call_with_retry,
)
from bulkinvoke.states import State

_HEADER_PARAMETERS = (
    ("content_type", "ContentType"),
    ("accept", "Accept"),
    ("custom_attributes", "CustomAttributes"),
    ("request_ttl_seconds", "RequestTTLSeconds"),
    ("invocation_timeout_seconds", "InvocationTimeoutSeconds"),
)


@dataclass(frozen=True, slots=True)
class Call:
    row: int
    attempt: int
    inference_id: str
    input_location: str
    options: RequestOptions


@dataclass(frozen=True, slots=True)
class CallResult:
    call: Call
    # SUBMITTED, REJECTED or FAILED; SUBMITTING when the run must stop (the attempt stays in doubt).
    state: State
    at: float
    output_location: str | None = None
    failure_location: str | None = None
    error: str | None = None
    retries: int = 0
    throttles: int = 0
    stop: ErrorClass | None = None


class Invoker:
    def __init__(
        self,
        client: Any,
        endpoint: str,
        *,
        limiter: RateLimiter,
        policy: RetryPolicy,
        output_path_extension: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._limiter = limiter
        self._policy = policy
        self._extension = output_path_extension
        self._clock = clock
        self._sleep = sleep
        self._rng = random.Random()

    def parameters(self, call: Call) -> dict[str, Any]:
        parameters: dict[str, Any] = {
            "EndpointName": self._endpoint,
            "InputLocation": call.input_location,
            "InferenceId": call.inference_id,
            "Filename": output_filename(call.inference_id),
        }
        if self._extension:
            parameters["S3OutputPathExtension"] = self._extension
        for field, parameter in _HEADER_PARAMETERS:
            value = getattr(call.options, field)
            if value is not None:
                parameters[parameter] = value
        return parameters

    def invoke(self, call: Call) -> CallResult:
        """Send one attempt (its rate-limit token already taken); retries take their own."""
        parameters = self.parameters(call)

        def send() -> dict[str, Any]:
            return self._client.invoke_endpoint_async(**parameters)

        def before_retry(error: ErrorClass, tries: int, delay: float) -> None:
            if error.kind is ErrorKind.THROTTLED:
                self._limiter.on_throttle()

        def sleep_then_acquire(delay: float) -> None:
            self._sleep(delay)
            self._limiter.acquire()

        try:
            response, stats = call_with_retry(
                send,
                self._policy,
                sleep=sleep_then_acquire,
                rng=self._rng,
                on_retry=before_retry,
            )
        except RunStopped as stopped:
            return CallResult(call, State.SUBMITTING, self._clock(), stop=stopped.error_class)
        except (Rejected, GaveUp) as failed:
            if failed.error_class.kind is ErrorKind.THROTTLED:
                self._limiter.on_throttle()
            return CallResult(
                call,
                State.REJECTED if isinstance(failed, Rejected) else State.FAILED,
                self._clock(),
                error=str(failed),
                retries=failed.retries,
                throttles=failed.throttles,
            )
        self._limiter.on_success()
        return CallResult(
            call,
            State.SUBMITTED,
            self._clock(),
            output_location=response.get("OutputLocation"),
            failure_location=response.get("FailureLocation"),
            retries=stats.retries,
            throttles=stats.throttles,
        )
