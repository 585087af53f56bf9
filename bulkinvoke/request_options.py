"""Per-request options of InvokeEndpointAsync and their limits, from botocore's service model.

The limits are those of ``botocore/data/sagemaker-runtime/2017-05-13/service-2.json``: checking
them here means a bad manifest row is refused before anything is sent, instead of failing one
call at a time with ValidationError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace

INFERENCE_ID_MAX = 64
CUSTOM_ATTRIBUTES_MAX = 1024
HEADER_MAX = 1024
INPUT_LOCATION_MAX = 1024
OUTPUT_PATH_EXTENSION_MAX = 512
FILENAME_MAX = 32
ENDPOINT_NAME_MAX = 63
REQUEST_TTL_RANGE = (60, 21600)
INVOCATION_TIMEOUT_RANGE = (1, 3600)

# InferenceId: "\A\S[\p{Print}]*\z" -- printable ASCII, not starting with a space.
INFERENCE_ID_PATTERN = re.compile(r"[!-~][ -~]*")
# CustomAttributes: visible US-ASCII (RFC 7230 field-value characters).
CUSTOM_ATTRIBUTES_PATTERN = re.compile(r"[ -~\t]*")
PRINTABLE_ASCII = re.compile(r"[ -~]*")
# ContentType, Accept: "\p{ASCII}*" in the model, but they travel as HTTP header values, which
# cannot hold control characters other than tab (a line break would end the header).
HEADER_PATTERN = re.compile(r"[ -~\t]*")
INPUT_LOCATION_PATTERN = re.compile(r"(https|s3)://([^/]+)/?(.*)", re.DOTALL)
OUTPUT_PATH_EXTENSION_PATTERN = re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]+")
FILENAME_PATTERN = re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9\-_.]*")
# EndpointName: "^[a-zA-Z0-9](-*[a-zA-Z0-9])*". The service refuses any other name with a
# ValidationError, which would reject every item of a run one call at a time.
ENDPOINT_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")


@dataclass(frozen=True)
class RequestOptions:
    """Options sent with each call; ``None`` means "not sent" (the service default applies)."""

    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    request_ttl_seconds: int | None = None
    invocation_timeout_seconds: int | None = None

    def overridden_by(self, other: RequestOptions) -> RequestOptions:
        """These options with every field that ``other`` sets taken from ``other``."""
        changes = {f.name: getattr(other, f.name) for f in fields(other)}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def problems(self) -> list[str]:
        return [p for f in fields(self) if (p := _check_option(f.name, getattr(self, f.name)))]


OPTION_NAMES = tuple(f.name for f in fields(RequestOptions))


def _check_ascii_text(
    name: str, value: str, maximum: int, pattern: re.Pattern[str], *, secret: bool = False
) -> str | None:
    """Why ``value`` (whose characters ``pattern`` matches one by one) cannot be sent, if so;
    a ``secret`` value's character is not quoted, only its position."""
    if len(value) > maximum:
        return f"{name} is {len(value)} characters long, more than the {maximum} allowed"
    for position, character in enumerate(value, 1):
        if not pattern.fullmatch(character):
            shown = "" if secret else f", {character!r},"
            return f"{name} must be printable ASCII: its character {position}{shown} is not"
    return None


def _check_header(name: str, value: str) -> str | None:
    return _check_ascii_text(name, value, HEADER_MAX, HEADER_PATTERN)


def _check_whole_number(name: str, value: object, bounds: tuple[int, int]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not bounds[0] <= value <= bounds[1]:
        return f"{name} must be a whole number from {bounds[0]} to {bounds[1]}"
    return None


def _check_option(name: str, value: object) -> str | None:
    if value is None:
        return None
    if name in ("content_type", "accept"):
        return _check_header(name, str(value))
    if name == "custom_attributes":
        return check_custom_attributes(str(value))
    if name == "request_ttl_seconds":
        return _check_whole_number(name, value, REQUEST_TTL_RANGE)
    return _check_whole_number(name, value, INVOCATION_TIMEOUT_RANGE)


def check_custom_attributes(value: str) -> str | None:
    return _check_ascii_text(
        "custom_attributes", value, CUSTOM_ATTRIBUTES_MAX, CUSTOM_ATTRIBUTES_PATTERN, secret=True
    )


def check_inference_id(value: str) -> str | None:
    if not 1 <= len(value) <= INFERENCE_ID_MAX or not INFERENCE_ID_PATTERN.fullmatch(value):
        return (
            f"inference_id must be 1-{INFERENCE_ID_MAX} printable ASCII characters, "
            "not starting with a space"
        )
    return None


def check_input_location(value: str) -> str | None:
    if not value:
        return "input_location is empty"
    if len(value) > INPUT_LOCATION_MAX:
        return f"input_location is longer than {INPUT_LOCATION_MAX} characters"
    # It travels as an HTTP header: only printable ASCII survives the trip unchanged.
    if not PRINTABLE_ASCII.fullmatch(value):
        return "input_location must be printable ASCII (no control or non-ASCII characters)"
    match = INPUT_LOCATION_PATTERN.fullmatch(value)
    if match is None or not match.group(2):
        return "input_location must be an s3://bucket/key (or https://) URI"
    if not match.group(3):
        return "input_location names a bucket but no object key"
    return None


def check_output_path_extension(value: str) -> str | None:
    pattern = OUTPUT_PATH_EXTENSION_PATTERN
    if not 1 <= len(value) <= OUTPUT_PATH_EXTENSION_MAX or not pattern.fullmatch(value):
        return (
            "output path extension must be 1-512 characters of a-z A-Z 0-9 ! _ . * ' ( ) / - "
            "and not start with s3: or https:"
        )
    return None


def check_filename(value: str) -> str | None:
    if not 1 <= len(value) <= FILENAME_MAX or not FILENAME_PATTERN.fullmatch(value):
        return "filename must be 1-32 characters of a-z A-Z 0-9 - _ . with at most one dot"
    return None


def check_endpoint_name(value: str) -> str | None:
    if len(value) > ENDPOINT_NAME_MAX or not ENDPOINT_NAME_PATTERN.fullmatch(value):
        return (
            f"endpoint name {value!r} must be 1-{ENDPOINT_NAME_MAX} letters, digits and "
            "hyphens, starting and ending with a letter or digit"
        )
    return None
