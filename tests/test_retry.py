"""Error classification from real botocore errors, the backoff policy as pure functions, and the
retry loop with a recording sleep."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.retries.standard import ThrottledRetryableChecker
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st
from urllib3.exceptions import ProtocolError

from bulkinvoke.calls.retry import (
    MESSAGE_MAX,
    ErrorClass,
    ErrorKind,
    GaveUp,
    Rejected,
    RetryPolicy,
    RunStopped,
    Stats,
    call_with_retry,
    classify,
)

OPERATION = "InvokeEndpointAsync"
URL = "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/demo/async-invocations"
NOT_FOUND = "Endpoint demo of account 123456789012 not found."


def client_error(code: str, status: int | None, message: str = "something happened") -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status, "RequestId": "r-1"}
    return ClientError(response, OPERATION)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
def test_every_code_botocore_counts_as_throttling_is_throttled(code: str) -> None:
    assert classify(client_error(code, 400)).kind is ErrorKind.THROTTLED


@pytest.mark.parametrize("code", ["Unknown", "ValidationError", "SomethingNew"])
def test_http_429_is_throttled_whatever_the_code(code: str) -> None:
    assert classify(client_error(code, 429)).kind is ErrorKind.THROTTLED


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ServiceUnavailable", 503),
        ("InternalFailure", 500),
        ("BadGateway", 502),
        ("GatewayTimeout", 504),
        ("SomethingNew", 599),
        ("RequestTimeout", 408),
        ("ServiceUnavailable", None),
        ("SomethingNew", None),
    ],
)
def test_server_side_errors_are_transient(code: str, status: int | None) -> None:
    error_class = classify(client_error(code, status))
    assert error_class.kind is ErrorKind.TRANSIENT
    assert (error_class.code, error_class.http_status) == (code, status)


@pytest.mark.parametrize(
    ("code", "status"),
    [("ValidationError", 400), ("SomethingNew", 400), ("NotFound", 404), ("TooLarge", 413)],
)
def test_other_client_errors_reject_the_request(code: str, status: int) -> None:
    assert classify(client_error(code, status)).kind is ErrorKind.REJECTED


def test_a_missing_endpoint_stops_the_run() -> None:
    error_class = classify(client_error("ValidationError", 400, NOT_FOUND))
    assert error_class.kind is ErrorKind.SYSTEMIC
    assert error_class.describe() == f"ValidationError: {NOT_FOUND}"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDeniedException", 400),
        ("AccessDenied", 403),
        ("UnrecognizedClientException", 403),
        ("InvalidSignatureException", 403),
        ("MissingAuthenticationToken", 403),
        ("IncompleteSignature", 400),
        ("ExpiredToken", 400),
        ("ExpiredTokenException", 400),
        ("InvalidClientTokenId", 403),
        ("RequestExpired", 400),
        ("SignatureDoesNotMatch", 403),
        ("SomethingNew", 403),
        ("SomethingNew", 401),
    ],
)
def test_access_and_credential_errors_stop_the_run(code: str, status: int) -> None:
    assert classify(client_error(code, status)).kind is ErrorKind.SYSTEMIC


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url=URL),
        ConnectionClosedError(endpoint_url=URL),
        ReadTimeoutError(endpoint_url=URL),
        ConnectTimeoutError(endpoint_url=URL),
        ProxyConnectionError(proxy_url="http://proxy:3128", error="refused"),
        BotoConnectionError(error="reset by peer"),
        HTTPClientError(error=ProtocolError("Connection aborted.")),
        ResponseStreamingError(error=ProtocolError("Connection broken")),
    ],
    ids=lambda error: type(error).__name__,
)
def test_connection_trouble_is_transient(error: Exception) -> None:
    error_class = classify(error)
    assert error_class.kind is ErrorKind.TRANSIENT
    assert error_class.code == type(error).__name__
    assert error_class.http_status is None


@pytest.mark.parametrize(
    "error",
    [
        NoCredentialsError(),
        PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
        NoRegionError(),
        ProfileNotFound(profile="nobody"),
        CredentialRetrievalError(provider="sso", error_msg="token expired"),
        ParamValidationError(report="Missing required parameter in input: InputLocation"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_local_configuration_errors_stop_the_run(error: Exception) -> None:
    assert classify(error).kind is ErrorKind.SYSTEMIC


def test_errors_that_are_not_botocore_are_raised_again() -> None:
    bug = KeyError("programming error")
    with pytest.raises(KeyError) as raised:
        classify(bug)
    assert raised.value is bug


def test_messages_quote_no_values() -> None:
    service = client_error(
        "ValidationError",
        400,
        "1 validation error detected: Value 'token=s3cr3t' at 'customAttributes' failed to "
        "satisfy constraint: Member must have length less than or equal to 1024",
    )
    assert "s3cr3t" not in classify(service).message
    assert "customAttributes" in classify(service).message
    report = ParamValidationError(
        report="Invalid type for parameter CustomAttributes, value: {'token': 's3cr3t'}, "
        "type: <class 'dict'>, valid types: <class 'str'>"
    )
    assert classify(report).message == (
        "Invalid type for parameter CustomAttributes, type: <class 'dict'>, "
        "valid types: <class 'str'>"
    )


def test_messages_are_one_short_line_without_the_canonical_request() -> None:
    signature = client_error(
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided.\n\n"
        "The Canonical String for this request should have been\n'POST\n"
        "x-amzn-sagemaker-custom-attributes:token=s3cr3t\n'",
    )
    assert classify(signature).message == (
        "The request signature we calculated does not match the signature you provided."
    )
    long = classify(client_error("ValidationError", 400, "word  \t " * 200))
    assert len(long.message) <= MESSAGE_MAX
    assert "\t" not in long.message and "  " not in long.message


@pytest.fixture
def stubbed() -> Any:
    session = botocore.session.get_session()
    client = session.create_client(
        "sagemaker-runtime",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        yield client, stubber


@pytest.mark.parametrize(
    ("code", "status", "message", "kind"),
    [
        ("ValidationError", 400, NOT_FOUND, ErrorKind.SYSTEMIC),
        ("ValidationError", 400, "InputLocation is not a valid S3 URI.", ErrorKind.REJECTED),
        ("ThrottlingException", 400, "Rate exceeded", ErrorKind.THROTTLED),
        ("ServiceUnavailable", 503, "Try again", ErrorKind.TRANSIENT),
        ("InternalFailure", 500, "Oops", ErrorKind.TRANSIENT),
    ],
)
def test_errors_raised_by_a_real_client(
    stubbed: Any, code: str, status: int, message: str, kind: ErrorKind
) -> None:
    client, stubber = stubbed
    stubber.add_client_error("invoke_endpoint_async", code, message, http_status_code=status)
    with pytest.raises(ClientError) as raised:
        client.invoke_endpoint_async(EndpointName="demo", InputLocation="s3://bucket/key")
    assert classify(raised.value) == ErrorClass(kind, code, message, status)


PLAIN = ErrorClass(ErrorKind.TRANSIENT, "ServiceUnavailable", "busy", 503)
KINDS = st.sampled_from(list(ErrorKind))
POLICIES = st.builds(
    lambda base, extra, multiplier, attempts, jitter: RetryPolicy(
        max_attempts=attempts,
        base_delay=base,
        max_delay=base + extra,
        multiplier=multiplier,
        jitter=jitter,
    ),
    st.floats(min_value=0.0, max_value=10.0),
    st.floats(min_value=0.0, max_value=100.0),
    st.floats(min_value=1.0, max_value=50.0),
    st.integers(min_value=1, max_value=20),
    st.sampled_from(["full", "none"]),
)


@given(POLICIES, st.integers(min_value=1, max_value=5000), st.integers())
def test_delay_stays_within_the_cap(policy: RetryPolicy, attempt: int, seed: int) -> None:
    delay = policy.delay(attempt, random.Random(seed))
    assert 0.0 <= delay <= policy.cap(attempt) <= policy.max_delay


@given(POLICIES, st.integers(min_value=1, max_value=5000))
def test_the_cap_never_shrinks(policy: RetryPolicy, attempt: int) -> None:
    assert policy.cap(attempt) <= policy.cap(attempt + 1)


@given(POLICIES, KINDS, st.integers(min_value=1, max_value=40))
def test_should_retry(policy: RetryPolicy, kind: ErrorKind, attempt: int) -> None:
    error_class = ErrorClass(kind, "Code", "message")
    if kind is ErrorKind.THROTTLED:
        expected = attempt < policy.max_throttled_attempts
    else:
        expected = kind is ErrorKind.TRANSIENT and attempt < policy.max_attempts
    assert policy.should_retry(error_class, attempt) == expected


def test_the_default_policy() -> None:
    policy = RetryPolicy(jitter="none")
    caps = [policy.delay(n, random.Random(0)) for n in range(1, 12)]
    assert caps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 20, 20, 20])
    assert RetryPolicy().max_attempts == 8
    assert RetryPolicy().jitter == "full"
    assert RetryPolicy(multiplier=1e6).cap(10_000) == 20.0


def test_policies_are_values() -> None:
    policy = RetryPolicy()
    assert policy == RetryPolicy() and hash(policy) == hash(RetryPolicy())
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "arguments",
    [
        {"max_attempts": 0},
        {"base_delay": -1.0},
        {"base_delay": 30.0, "max_delay": 20.0},
        {"multiplier": 0.5},
        {"jitter": "equal"},
    ],
)
def test_nonsense_policies_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**arguments)


def test_the_cap_needs_a_try_made() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().cap(0)


class Script:
    """A call that fails with the given errors, in order, then returns "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_success_at_once_costs_nothing() -> None:
    slept: list[float] = []
    assert call_with_retry(Script(), RetryPolicy(), sleep=slept.append, rng=random.Random(0)) == (
        "done",
        Stats(retries=0, throttles=0),
    )
    assert slept == []


def test_retries_wait_as_the_policy_says_and_are_counted() -> None:
    policy = RetryPolicy()
    slept: list[float] = []
    retried: list[tuple[ErrorClass, int, float]] = []
    script = Script(
        client_error("ThrottlingException", 400),
        ReadTimeoutError(endpoint_url=URL),
        client_error("ThrottlingException", 400),
    )
    value, stats = call_with_retry(
        script,
        policy,
        sleep=slept.append,
        rng=random.Random(7),
        on_retry=lambda *arguments: retried.append(arguments),
    )
    assert (value, stats, stats.attempts, script.calls) == ("done", Stats(3, 2), 4, 4)
    twin = random.Random(7)
    assert slept == [policy.delay(n, twin) for n in (1, 2, 3)]
    assert [(error.kind, number, delay) for error, number, delay in retried] == [
        (ErrorKind.THROTTLED, 1, slept[0]),
        (ErrorKind.TRANSIENT, 2, slept[1]),
        (ErrorKind.THROTTLED, 3, slept[2]),
    ]


def test_gives_up_after_max_attempts() -> None:
    slept: list[float] = []
    busy = client_error("ServiceUnavailable", 503)
    script = Script(*[busy] * 5)
    policy = RetryPolicy(max_attempts=3, jitter="none")
    with pytest.raises(GaveUp) as raised:
        call_with_retry(script, policy, sleep=slept.append, rng=random.Random(0))
    gave_up = raised.value
    assert (gave_up.attempts, gave_up.retries, gave_up.throttles, script.calls) == (3, 2, 0, 3)
    assert gave_up.error_class.kind is ErrorKind.TRANSIENT
    assert gave_up.__cause__ is busy
    assert slept == pytest.approx([0.1, 0.2])
    assert str(gave_up) == "gave up after 3 attempts: ServiceUnavailable: something happened"


def test_sleep_runs_before_every_retry_even_without_delay() -> None:
    slept: list[float] = []
    script = Script(client_error("Throttling", 400), client_error("InternalFailure", 500))
    policy = RetryPolicy(base_delay=0.0, max_delay=0.0)
    assert call_with_retry(script, policy, sleep=slept.append, rng=random.Random(0)) == (
        "done",
        Stats(retries=2, throttles=1),
    )
    assert slept == [0.0, 0.0]


def test_a_rejection_is_final_and_keeps_the_count() -> None:
    slept: list[float] = []
    script = Script(client_error("Throttling", 400), client_error("ValidationError", 400, "bad"))
    with pytest.raises(Rejected) as raised:
        call_with_retry(script, RetryPolicy(), sleep=slept.append, rng=random.Random(0))
    assert raised.value.error_class.describe() == "ValidationError: bad"
    assert raised.value.stats == Stats(retries=1, throttles=1)
    assert (len(slept), script.calls) == (1, 2)


def test_a_systemic_error_stops_at_once_and_says_what_to_check() -> None:
    slept: list[float] = []
    script = Script(client_error("ValidationError", 400, NOT_FOUND))
    with pytest.raises(RunStopped) as raised:
        call_with_retry(script, RetryPolicy(), sleep=slept.append, rng=random.Random(0))
    assert raised.value.error_class.kind is ErrorKind.SYSTEMIC
    assert "check the endpoint name and the region" in str(raised.value)
    assert (slept, script.calls) == ([], 1)
    with pytest.raises(RunStopped, match="credentials"):
        call_with_retry(
            Script(NoCredentialsError()), RetryPolicy(), sleep=slept.append, rng=random.Random(0)
        )


def test_programming_errors_pass_through_untouched() -> None:
    bug = TypeError("wrong argument")
    script = Script(bug)
    with pytest.raises(TypeError) as raised:
        call_with_retry(script, RetryPolicy(), sleep=lambda _: None, rng=random.Random(0))
    assert raised.value is bug
    assert script.calls == 1


def test_throttled_calls_keep_trying_longer_than_failing_ones() -> None:
    throttled = client_error("ThrottlingException", 400)
    script = Script(*[throttled] * 10)
    policy = RetryPolicy(max_attempts=3, max_throttled_attempts=6, base_delay=0.0, max_delay=0.0)
    with pytest.raises(GaveUp) as raised:
        call_with_retry(script, policy, sleep=lambda _: None, rng=random.Random(0))
    assert (raised.value.attempts, raised.value.throttles, script.calls) == (6, 6, 6)


def test_throttled_tries_do_not_use_up_the_attempts_for_failures() -> None:
    throttled = client_error("ThrottlingException", 400)
    busy = client_error("ServiceUnavailable", 503)
    script = Script(*[throttled] * 7, busy, busy)
    policy = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
    value, stats = call_with_retry(script, policy, sleep=lambda _: None, rng=random.Random(0))
    assert (value, stats.throttles, stats.retries) == ("done", 7, 9)
