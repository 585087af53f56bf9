"""InvokeEndpointAsync on the wire: request headers in, validated request or service error out.

Limits come from botocore's ``sagemaker-runtime`` model through ``bulkinvoke.request_options``.
Errors are sent the way the service's rest-json protocol sends them: the code in the ``x-amzn-
ErrorType`` header (which botocore's RestJSONParser reads first) and ``{"message": ...}`` in the
body, so ``ClientError.response["Error"]`` gets both ``Code`` and ``Message``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bulkinvoke import request_options as options
from bulkinvoke.emulator.config import ENDPOINT_NAME_MAX, ENDPOINT_NAME_PATTERN

INPUT_LOCATION = "x-amzn-sagemaker-inputlocation"
INFERENCE_ID = "x-amzn-sagemaker-inference-id"
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
CONTENT_TYPE = "x-amzn-sagemaker-content-type"
ACCEPT = "x-amzn-sagemaker-accept"
REQUEST_TTL = "x-amzn-sagemaker-requestttlseconds"
INVOCATION_TIMEOUT = "x-amzn-sagemaker-invocationtimeoutseconds"
FILENAME = "x-amzn-sagemaker-filename"
OUTPUT_PATH_EXTENSION = "x-amzn-sagemaker-s3outputpathextension"
OUTPUT_LOCATION_HEADER = "X-Amzn-SageMaker-OutputLocation"
FAILURE_LOCATION_HEADER = "X-Amzn-SageMaker-FailureLocation"

# The service's defaults, from the model's documentation of the two headers.
DEFAULT_REQUEST_TTL_SECONDS = 21600
DEFAULT_INVOCATION_TIMEOUT_SECONDS = 900
BODY_MAX = 128000
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


def check_signed(headers: Mapping[str, str]) -> None:
    """Refuse unsigned requests the way AWS does; the signature itself is not verified."""
    authorization = headers.get("authorization")
    if authorization is None:
        raise ServiceError(
            403, "MissingAuthenticationTokenException", "Missing Authentication Token"
        )
    parts = ("Credential=", "SignedHeaders=", "Signature=")
    if not authorization.startswith("AWS4-HMAC-SHA256 ") or not all(
        part in authorization for part in parts
    ):
        raise ServiceError(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            f"parameters (AWS4-HMAC-SHA256). Authorization={authorization}",
        )
    if "x-amz-date" not in headers and "date" not in headers:
        raise ServiceError(
            403,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )


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


def _integer(problems: _Problems, member: str, option: str, text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        problems.add(member, text, "Member must be an integer")
        return default
    for problem in options.RequestOptions(**{option: value}).problems():
        problems.add(member, text, problem)
    return value


def _option_check(option: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        found = options.RequestOptions(**{option: value}).problems()
        return found[0] if found else None

    return check


# (member name as the service reports it, header, check); values of sensitive members are
# never echoed back, as the service does for CustomAttributes.
_STRING_MEMBERS: tuple[tuple[str, str, Callable[[str], str | None]], ...] = (
    ("contentType", CONTENT_TYPE, _option_check("content_type")),
    ("accept", ACCEPT, _option_check("accept")),
    ("customAttributes", CUSTOM_ATTRIBUTES, options.check_custom_attributes),
    ("inferenceId", INFERENCE_ID, options.check_inference_id),
    ("inputLocation", INPUT_LOCATION, options.check_input_location),
    ("s3OutputPathExtension", OUTPUT_PATH_EXTENSION, options.check_output_path_extension),
    ("filename", FILENAME, options.check_filename),
)
_SENSITIVE = frozenset({"customAttributes"})


def parse_invocation(
    endpoint_name: str, headers: Mapping[str, str], body: bytes
) -> InvocationRequest:
    """Validate every member as the service does; raise a ValidationError listing all problems."""
    problems = _Problems()
    if len(endpoint_name) > ENDPOINT_NAME_MAX or not ENDPOINT_NAME_PATTERN.fullmatch(endpoint_name):
        problems.add(
            "endpointName",
            endpoint_name,
            f"Member must have length less than or equal to {ENDPOINT_NAME_MAX} and satisfy "
            f"regular expression pattern: {ENDPOINT_NAME_PATTERN.pattern}",
        )
    values: dict[str, str | None] = {}
    for member, header, check in _STRING_MEMBERS:
        value = values[member] = headers.get(header)
        if value is not None and (problem := check(value)):
            problems.add(member, None if member in _SENSITIVE else value, problem)
    ttl = _integer(
        problems,
        "requestTTLSeconds",
        "request_ttl_seconds",
        headers.get(REQUEST_TTL),
        DEFAULT_REQUEST_TTL_SECONDS,
    )
    timeout = _integer(
        problems,
        "invocationTimeoutSeconds",
        "invocation_timeout_seconds",
        headers.get(INVOCATION_TIMEOUT),
        DEFAULT_INVOCATION_TIMEOUT_SECONDS,
    )
    input_location = values["inputLocation"]
    if len(body) > BODY_MAX:
        problems.add("body", None, f"Member must have length less than or equal to {BODY_MAX}")
    # An empty payload is indistinguishable from no Body on the wire.
    if bool(body) == (input_location is not None):
        problems.add("inputLocation", None, "Provide exactly one of Body and InputLocation")
    problems.raise_any()
    return InvocationRequest(
        endpoint_name=endpoint_name,
        inference_id=values["inferenceId"],
        input_location=input_location,
        body=body or None,
        content_type=values["contentType"],
        accept=values["accept"],
        custom_attributes=values["customAttributes"],
        output_path_extension=values["s3OutputPathExtension"],
        filename=values["filename"],
        request_ttl_seconds=ttl,
        invocation_timeout_seconds=timeout,
    )
