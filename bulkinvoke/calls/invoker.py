"""The only caller of InvokeEndpointAsync.

One call per attempt, retried under the run's :class:`~bulkinvoke.calls.retry.RetryPolicy`; the
result is a value (accepted, rejected, failed, or "stop the run"), never an exception, so the
engine records every outcome the same way.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bulkinvoke.aws_protocols import RuntimeClient
from bulkinvoke.calls.limiter import RateLimiter
from bulkinvoke.calls.retry import (
    ErrorClass,
    ErrorKind,
    GaveUp,
    Rejected,
    RetryPolicy,
    RunStopped,
    call_with_retry,
)
from bulkinvoke.manifest.ids import output_filename
from bulkinvoke.redaction import redact
from bulkinvoke.request_options import RequestOptions
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
        client: RuntimeClient,
        endpoint: str,
        *,
        limiter: RateLimiter,
        policy: RetryPolicy,
        output_path_extension: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._endpoint = endpoint
        self._limiter = limiter
        self._policy = policy
        self._extension = output_path_extension
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._rng = random.Random()
        self._send_lock = threading.Lock()
        # Monotonic times at which paced calls left in the last second (see _space_out).
        self._recent_sends: deque[float] = deque()
        # Signed and about to leave: the last moment at which spacing can be enforced.
        client.meta.events.register(
            "before-send.sagemaker-runtime.InvokeEndpointAsync", self._space_out
        )

    def _space_out(self, **_: Any) -> None:
        """Let a paced call leave only if the last second holds fewer calls than the rate.

        The limiter paces the calls as they are handed to the pool, but on a busy machine a call
        can then be held up on its way out (CPU, the GIL) and leave together with the next ones,
        a burst the limiter cannot see. Checked here, at the last moment, no second holds more
        than the rate; a call held up may still catch up within that, so the limiter's schedule
        keeps setting the long-run rate.
        """
        while (rate := self._limiter.current_rate) is not None:
            allowed = max(1, math.floor(rate))
            with self._send_lock:
                now = self._monotonic()
                recent = self._recent_sends
                while recent and recent[0] <= now - 1.0:
                    recent.popleft()
                if len(recent) < allowed:
                    recent.append(now)
                    return
                wait = recent[-allowed] + 1.0 - now
            self._sleep(wait)

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
        sent_at = self._monotonic()

        def send() -> dict[str, Any]:
            nonlocal sent_at
            sent_at = self._monotonic()
            return self._client.invoke_endpoint_async(**parameters)

        def before_retry(error: ErrorClass, tries: int, delay: float) -> None:
            if error.kind is ErrorKind.THROTTLED:
                self._limiter.on_throttle(sent_at)

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
            # A service message may quote the request: the attributes must not reach the log.
            message = redact(stopped.error_class.message, call.options.custom_attributes)
            problem = replace(stopped.error_class, message=message)
            return CallResult(call, State.SUBMITTING, self._clock(), stop=problem)
        except (Rejected, GaveUp) as failed:
            if failed.error_class.kind is ErrorKind.THROTTLED:
                self._limiter.on_throttle(sent_at)
            return CallResult(
                call,
                State.REJECTED if isinstance(failed, Rejected) else State.FAILED,
                self._clock(),
                error=redact(str(failed), call.options.custom_attributes),
                retries=failed.retries,
                throttles=failed.throttles,
            )
        self._limiter.on_success(sent_at)
        return CallResult(
            call,
            State.SUBMITTED,
            self._clock(),
            output_location=response.get("OutputLocation"),
            failure_location=response.get("FailureLocation"),
            retries=stats.retries,
            throttles=stats.throttles,
        )
