"""InvokeEndpointAsync on the wire: request headers in, validated request or service error out.

Limits come from botocore's ``sagemaker-runtime`` model data (``emulator.model``), never from the
core's ``request_options``, which the emulator is there to test.
Errors are sent the way the service's rest-json protocol sends them: the code in the ``x-amzn-
ErrorType`` header (which botocore's RestJSONParser reads first) and ``{"message": ...}`` in the
body, so ``ClientError.response["Error"]`` gets both ``Code`` and ``Message``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from bulkinvoke.emulator.model import Member, header_members, members

OUTPUT_LOCATION_HEADER = "X-Amzn-SageMaker-OutputLocation"
FAILURE_LOCATION_HEADER = "X-Amzn-SageMaker-FailureLocation"

# The service's defaults, from the model's documentation of the two headers.
DEFAULT_REQUEST_TTL_SECONDS = 21600
DEFAULT_INVOCATION_TIMEOUT_SECONDS = 900
_DEFAULTS = {
    "RequestTTLSeconds": DEFAULT_REQUEST_TTL_SECONDS,
    "InvocationTimeoutSeconds": DEFAULT_INVOCATION_TIMEOUT_SECONDS,
}
_SHOWN_VALUE_MAX = 80


class ServiceError(Exception):
    """An error response: HTTP status, error code (as botocore will report it) and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> tuple[int, list[tuple[str, str]], bytes]:
        body = json.dumps({"message": self.message}).encode()
        headers = [
            ("x-amzn-ErrorType", self.code),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            ("Content-Type", "application/json"),
        ]
        return self.status, headers, body


def validation_error(message: str) -> ServiceError:
    return ServiceError(400, "ValidationError", message)


def throttling_error() -> ServiceError:
    return ServiceError(400, "ThrottlingException", "Rate exceeded")


def unavailable_error() -> ServiceError:
    return ServiceError(503, "ServiceUnavailable", "The service is unavailable. Try again later.")


def internal_failure() -> ServiceError:
    return ServiceError(500, "InternalFailure", "An internal failure occurred. Try again later.")


@dataclass(frozen=True, slots=True)
class InvocationRequest:
    """A valid InvokeEndpointAsync request; exactly one of input_location and body is set."""

    endpoint_name: str
    inference_id: str | None
    input_location: str | None
    body: bytes | None
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    output_path_extension: str | None
    filename: str | None
    request_ttl_seconds: int
    invocation_timeout_seconds: int


class _Problems:
    """Collects constraint violations into the service's "N validation errors detected" text."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, member: str, value: str | None, constraint: str) -> None:
        if value is None:
            self.items.append(f"Value at '{member}' failed to satisfy constraint: {constraint}")
            return
        shown = value if len(value) <= _SHOWN_VALUE_MAX else value[:_SHOWN_VALUE_MAX] + "..."
        self.items.append(
            f"Value '{shown}' at '{member}' failed to satisfy constraint: {constraint}"
        )

    def raise_any(self) -> None:
        if self.items:
            count = len(self.items)
            noun = "error" if count == 1 else "errors"
            raise validation_error(f"{count} validation {noun} detected: " + "; ".join(self.items))


def _integer(problems: _Problems, member: Member, text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        problems.add(member.reported_name, text, "Member must be an integer")
        return default
    if (problem := member.problem(value)) is not None:
        problems.add(member.reported_name, text, problem)
    return value


def parse_invocation(
    endpoint_name: str, headers: Mapping[str, str], body: bytes
) -> InvocationRequest:
    """Validate every member as the service does; raise a ValidationError listing all problems."""
    problems = _Problems()
    model = members()
    name_problem = model["EndpointName"].problem(endpoint_name)
    if name_problem is not None:
        problems.add("endpointName", endpoint_name, name_problem)
    values: dict[str, str | None] = {}
    numbers: dict[str, int] = {}
    for member in header_members():
        text = headers.get(member.wire_name.lower())
        if member.type_name == "integer":
            numbers[member.name] = _integer(problems, member, text, _DEFAULTS[member.name])
            continue
        values[member.name] = text
        if text is not None and (problem := member.problem(text)) is not None:
            # Values of sensitive members are never echoed back, as the service does.
            problems.add(member.reported_name, None if member.sensitive else text, problem)
    input_location = values["InputLocation"]
    body_max = model["Body"].maximum
    if body_max is not None and len(body) > body_max:
        problems.add("body", None, f"Member must have length less than or equal to {body_max}")
    # An empty payload is indistinguishable from no Body on the wire.
    if bool(body) == (input_location is not None):
        problems.add("inputLocation", None, "Provide exactly one of Body and InputLocation")
    problems.raise_any()
    return InvocationRequest(
        endpoint_name=endpoint_name,
        inference_id=values["InferenceId"],
        input_location=input_location,
        body=body or None,
        content_type=values["ContentType"],
        accept=values["Accept"],
        custom_attributes=values["CustomAttributes"],
        output_path_extension=values["S3OutputPathExtension"],
        filename=values["Filename"],
        request_ttl_seconds=numbers["RequestTTLSeconds"],
        invocation_timeout_seconds=numbers["InvocationTimeoutSeconds"],
    )
