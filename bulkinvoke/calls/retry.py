"""What a failed call means, and how long to wait before trying it again.

The botocore client is built with botocore's own retries off (``retries={"total_max_attempts":
1}``), so this module is the only retry layer: every throttle reaches the caller, to be counted
and passed on to the rate limiter, rather than absorbed out of sight.

``classify`` sorts a botocore error into one of four kinds; any other error is a programming
error, never classified but raised again:

- THROTTLED: what botocore's own retry logic counts as throttling, and any HTTP 429. Retried.
- TRANSIENT: 5xx, timeouts, connection errors. Retried until the attempts run out; then the item
  fails. ``EndpointConnectionError`` is one, although a wrong region or a dead network gives it
  on every call.
- REJECTED: any other 4xx, such as ``ValidationError``: about this request only. No retry.
- SYSTEMIC: nothing succeeds until someone acts: no such endpoint, access denied, credentials
  missing, expired or invalid, no region, or parameters botocore refused (rows are checked before
  anything is sent, so that is a bug or a bad run setting). The run stops; the ledger resumes.

``RetryPolicy`` is data (as in tenacity), its delays and decisions pure functions;
``call_with_retry`` applies it, with the sleep and the random source injected.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    ParamValidationError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

from bulkinvoke.errors import error_code

T = TypeVar("T")


class ErrorKind(Enum):
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    REJECTED = "rejected"
    SYSTEMIC = "systemic"


RETRYABLE = frozenset({ErrorKind.THROTTLED, ErrorKind.TRANSIENT})

# botocore's own lists, so a code it learns to treat as throttling is treated so here too. Its
# attributes are private: the SageMaker codes are named as well, so that a rename in botocore
# cannot make throttles silently look like rejections.
THROTTLING_CODES = frozenset(getattr(ThrottledRetryableChecker, "_THROTTLED_ERROR_CODES", ())) | {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
}
TRANSIENT_CODES = frozenset(getattr(TransientRetryableChecker, "_TRANSIENT_ERROR_CODES", ())) | {
    "ServiceUnavailable",
    "InternalFailure",
}
# Access denied, or the caller's credentials or signature refused: the same for every call.
ACCESS_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "AuthFailure", "UnrecognizedClientException"}
    | {"InvalidSignatureException", "SignatureDoesNotMatch", "RequestExpired"}
    | {"IncompleteSignature", "IncompleteSignatureException", "InvalidAccessKeyId"}
    | {"MissingAuthenticationToken", "MissingAuthenticationTokenException"}
    | {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"}
)
_ENDPOINT_NOT_FOUND = re.compile(r"\bendpoint\s+\S+\s+of\s+account\s+\S+\s+not\s+found", re.I)
_TRANSIENT_EXCEPTIONS = (BotoConnectionError, HTTPClientError, IncompleteReadError)
# A TLS failure that is the certificate's, not the connection's.
_UNTRUSTED = re.compile(r"CERTIFICATE_VERIFY_FAILED|certificate verify failed|hostname", re.I)
# Service messages may quote the rejected value ("Value 'x' at 'customAttributes' failed to ...")
# and botocore's parameter report does too ("..., value: x, type: ..."): never log either value.
_QUOTED_VALUE = re.compile(r"Value '.*?' at '", re.S)
_REPORTED_VALUE = re.compile(r", value: .*?(?=, (?:type|valid)\b)")
MESSAGE_MAX = 200


@dataclass(frozen=True)
class ErrorClass:
    """A classified error; ``message`` is one short line, safe to log and to store."""

    kind: ErrorKind
    code: str
    message: str
    http_status: int | None = None

    def describe(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def classify(error: BaseException) -> ErrorClass:
    """Sort a botocore error into an ``ErrorClass``; raise any other error again."""
    if isinstance(error, ClientError):
        return _classify_response(error)
    if isinstance(error, BotoCoreError):
        transient = isinstance(error, _TRANSIENT_EXCEPTIONS)
        kind = ErrorKind.TRANSIENT if transient else ErrorKind.SYSTEMIC
        if isinstance(error, ParamValidationError):
            text = "; ".join(str(error.kwargs.get("report", "")).splitlines())
        else:
            text = str(error)
        message = _one_line(text)
        if isinstance(error, SSLError) and _UNTRUSTED.search(text):
            # No retry makes a certificate trusted: the user must say which CA to trust.
            kind = ErrorKind.SYSTEMIC
            message += (
                "; the endpoint's certificate is not trusted: pass --ca-bundle with the CA that "
                "signed it (or set AWS_CA_BUNDLE)"
            )
        return ErrorClass(kind, type(error).__name__, message)
    raise error


def _classify_response(error: ClientError) -> ErrorClass:
    details = error.response.get("Error", {})
    code = error_code(error) or "Unknown"
    # Some messages go on, after the first line, with the canonical request: headers included.
    message = _one_line(str(details.get("Message") or "").partition("\n")[0])
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in THROTTLING_CODES or status == 429:
        kind = ErrorKind.THROTTLED
    elif code in ACCESS_CODES or status in (401, 403) or _ENDPOINT_NOT_FOUND.search(message):
        kind = ErrorKind.SYSTEMIC
    elif code not in TRANSIENT_CODES and status is not None and 400 <= status < 500:
        kind = ErrorKind.REJECTED
    else:
        kind = ErrorKind.TRANSIENT
    return ErrorClass(kind, code, message, status)


def _one_line(text: str) -> str:
    text = _REPORTED_VALUE.sub("", _QUOTED_VALUE.sub("Value at '", text))
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_MAX else text[: MESSAGE_MAX - 1] + "…"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, as data; ``attempt_number`` counts tries made.

    Throttling says "slower", not "broken": while the adaptive limiter brings the rate down, a
    throttled call keeps trying for longer (``max_throttled_attempts``) than one that failed.
    """

    max_attempts: int = 8
    max_throttled_attempts: int = 30
    base_delay: float = 0.1
    max_delay: float = 20.0
    multiplier: float = 2.0
    jitter: Literal["full", "none"] = "full"

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= self.max_throttled_attempts:
            raise ValueError("attempts must satisfy 1 <= max_attempts <= max_throttled_attempts")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ValueError("delays must satisfy 0 <= base_delay <= max_delay")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be at least 1: {self.multiplier}")
        if self.jitter not in ("full", "none"):
            raise ValueError(f"jitter must be 'full' or 'none': {self.jitter!r}")

    def cap(self, attempt_number: int) -> float:
        """The longest wait after ``attempt_number`` tries: it grows, up to ``max_delay``."""
        if attempt_number < 1:
            raise ValueError(f"a delay follows at least one try: {attempt_number}")
        try:
            growth = self.multiplier ** (attempt_number - 1)
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, self.base_delay * growth)

    def delay(self, attempt_number: int, rng: random.Random) -> float:
        cap = self.cap(attempt_number)
        return rng.uniform(0.0, cap) if self.jitter == "full" else cap

    def should_retry(
        self, error_class: ErrorClass, attempt_number: int, throttles: int = 0
    ) -> bool:
        """Whether to try again after ``attempt_number`` tries, ``throttles`` of them throttled:
        throttled tries do not use up the attempts allowed for failures."""
        if error_class.kind not in RETRYABLE or attempt_number >= self.max_throttled_attempts:
            return False
        if error_class.kind is ErrorKind.THROTTLED:
            return True
        return attempt_number - throttles < self.max_attempts


@dataclass(frozen=True)
class Stats:
    """What one call cost: the retries it took and how many of its tries were throttled."""

    retries: int = 0
    throttles: int = 0

    @property
    def attempts(self) -> int:
        return self.retries + 1


class CallFailed(Exception):
    """A call that did not succeed: why (``error_class``) and what it cost (``stats``)."""

    def __init__(self, error_class: ErrorClass, stats: Stats | None = None) -> None:
        self.error_class = error_class
        self.stats = stats or Stats()
        super().__init__(self._text())

    @property
    def attempts(self) -> int:
        return self.stats.attempts

    @property
    def retries(self) -> int:
        return self.stats.retries

    @property
    def throttles(self) -> int:
        return self.stats.throttles

    def _text(self) -> str:
        return self.error_class.describe()


class GaveUp(CallFailed):
    """A throttled or transient error outlasted the policy's attempts: the item failed."""

    def _text(self) -> str:
        return f"gave up after {self.attempts} attempts: {self.error_class.describe()}"


class Rejected(CallFailed):
    """The service refused this request: the item is rejected, nothing else is wrong."""


class RunStopped(CallFailed):
    """No call can succeed until someone acts: stop the whole run."""

    def _text(self) -> str:
        return f"stopping the run: {self.error_class.describe()} ({_remedy(self.error_class)})"


def _remedy(error_class: ErrorClass) -> str:
    if _ENDPOINT_NOT_FOUND.search(error_class.message):
        return "check the endpoint name and the region"
    if error_class.code in ("NoRegionError", "ProfileNotFound"):
        return "check the AWS profile and region settings"
    if error_class.code == "ParamValidationError":
        return "the request could not be built: this is a bug or a bad run setting"
    return "check the AWS credentials and that they may call sagemaker:InvokeEndpointAsync"


def call_with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None],
    rng: random.Random,
    on_retry: Callable[[ErrorClass, int, float], None] | None = None,
) -> tuple[T, Stats]:
    """Call ``fn`` until it succeeds or the policy says stop; return its value and ``Stats``.

    Raises ``RunStopped`` (SYSTEMIC), ``Rejected`` (REJECTED) or ``GaveUp`` (attempts used up),
    each with the ``ErrorClass``, the ``Stats`` so far and the botocore error as its cause; other
    exceptions pass through. Before each retry ``on_retry(error_class, attempt_number, delay)``
    runs (the place to tell the rate limiter of a throttle; a ``GaveUp``'s last one is its own),
    then ``sleep(delay)``, always, even for a zero delay, so a sleep that also paces can rely on it.
    """
    throttles = 0
    attempt_number = 0
    while True:
        attempt_number += 1
        try:
            value = fn()
        except (ClientError, BotoCoreError) as error:
            error_class = classify(error)
            if error_class.kind is ErrorKind.THROTTLED:
                throttles += 1
            stats = Stats(retries=attempt_number - 1, throttles=throttles)
            if error_class.kind is ErrorKind.SYSTEMIC:
                raise RunStopped(error_class, stats) from error
            if error_class.kind is ErrorKind.REJECTED:
                raise Rejected(error_class, stats) from error
            if not policy.should_retry(error_class, attempt_number, throttles):
                raise GaveUp(error_class, stats) from error
            wait = policy.delay(attempt_number, rng)
            if on_retry is not None:
                on_retry(error_class, attempt_number, wait)
            sleep(wait)
        else:
            return value, Stats(retries=attempt_number - 1, throttles=throttles)
