"""Every request rule of the service model is checked server-side, with the service's errors."""

from __future__ import annotations

import http.client
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from bulkinvoke.emulator import LocalStack
from tests.emulator.conftest import CREDENTIALS, INPUT_BUCKET, REGION

GOOD_INPUT = f"s3://{INPUT_BUCKET}/hello.txt"

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("id too long", {"InferenceId": "x" * 65}, "inferenceId"),
    ("id not printable", {"InferenceId": "ab\x7fc"}, "inferenceId"),
    ("id not ascii", {"InferenceId": "idé"}, "inferenceId"),
    ("custom attributes too long", {"CustomAttributes": "a" * 1025}, "customAttributes"),
    ("custom attributes not ascii", {"CustomAttributes": "café"}, "customAttributes"),
    ("ttl below 60", {"RequestTTLSeconds": 59}, "requestTTLSeconds"),
    ("ttl above 21600", {"RequestTTLSeconds": 21601}, "requestTTLSeconds"),
    ("timeout 0", {"InvocationTimeoutSeconds": 0}, "invocationTimeoutSeconds"),
    ("timeout 3601", {"InvocationTimeoutSeconds": 3601}, "invocationTimeoutSeconds"),
    ("filename two dots", {"Filename": "a.b.c"}, "filename"),
    ("filename too long", {"Filename": "a" * 33}, "filename"),
    ("filename leading hyphen", {"Filename": "-a.out"}, "filename"),
    ("filename slash", {"Filename": "a/b.out"}, "filename"),
    ("extension s3 prefix", {"S3OutputPathExtension": "s3:x"}, "s3OutputPathExtension"),
    ("extension space", {"S3OutputPathExtension": "a b"}, "s3OutputPathExtension"),
    ("extension too long", {"S3OutputPathExtension": "a" * 513}, "s3OutputPathExtension"),
    ("content type too long", {"ContentType": "t" * 1025}, "contentType"),
    ("accept not ascii", {"Accept": "text/é"}, "accept"),
]
LOCATION_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("input not s3", {"InputLocation": "ftp://bucket/key"}, "inputLocation"),
    ("input not a uri", {"InputLocation": "hello.txt"}, "inputLocation"),
    ("input too long", {"InputLocation": "s3://b/" + "k" * 1020}, "inputLocation"),
    ("body and input", {"InputLocation": GOOD_INPUT, "Body": b"x"}, "exactly one of Body"),
    ("neither body nor input", {}, "exactly one of Body"),
    ("body too large", {"Body": b"x" * 128001}, "body"),
]


def _error(runtime: BaseClient, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        runtime.invoke_endpoint_async(**kwargs)
    return caught.value.response


@pytest.mark.parametrize(("params", "member"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_header_rules(runtime: BaseClient, params: dict[str, Any], member: str) -> None:
    response = _error(runtime, EndpointName="main", InputLocation=GOOD_INPUT, **params)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "ValidationError"
    message = response["Error"]["Message"]
    assert message.startswith("1 validation error detected: ")
    assert f"at '{member}' failed to satisfy constraint" in message


@pytest.mark.parametrize(
    ("params", "expected"),
    [c[1:] for c in LOCATION_CASES],
    ids=[c[0] for c in LOCATION_CASES],
)
def test_input_rules(runtime: BaseClient, params: dict[str, Any], expected: str) -> None:
    response = _error(runtime, EndpointName="main", **params)
    assert response["Error"]["Code"] == "ValidationError"
    assert expected in response["Error"]["Message"]


def test_sensitive_values_are_not_echoed(runtime: BaseClient) -> None:
    secret = "token=sécret"
    response = _error(
        runtime, EndpointName="main", InputLocation=GOOD_INPUT, CustomAttributes=secret
    )
    assert "sécret" not in response["Error"]["Message"]


def test_all_problems_are_reported(runtime: BaseClient) -> None:
    response = _error(
        runtime,
        EndpointName="main",
        InputLocation=GOOD_INPUT,
        Filename="a.b.c",
        RequestTTLSeconds=1,
    )
    message = response["Error"]["Message"]
    assert message.startswith("2 validation errors detected: ")
    assert "'filename'" in message and "'requestTTLSeconds'" in message


@pytest.mark.parametrize("name", ["bad_name", "x" * 64, "-leading"])
def test_bad_endpoint_name(runtime: BaseClient, name: str) -> None:
    response = _error(runtime, EndpointName=name, InputLocation=GOOD_INPUT)
    assert response["Error"]["Code"] == "ValidationError"
    assert "at 'endpointName'" in response["Error"]["Message"]


def test_unknown_endpoint(stack: LocalStack, runtime: BaseClient) -> None:
    before = stack.stats()["rejected"]
    response = _error(runtime, EndpointName="nosuch", InputLocation=GOOD_INPUT)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"] == {
        "Code": "ValidationError",
        "Message": "Endpoint nosuch of account 123456789012 not found.",
    }
    assert stack.stats()["rejected"] == before + 1


def _raw_post(stack: LocalStack, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    url = urlsplit(stack.sagemaker_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request(
        "POST",
        "/endpoints/main/async-invocations",
        headers={"X-Amzn-SageMaker-InputLocation": GOOD_INPUT, **headers},
    )
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def test_unsigned_request_is_refused(stack: LocalStack) -> None:
    before = stack.stats()["unauthenticated"]
    status, headers, body = _raw_post(stack, {})
    assert status == 403
    assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert body == {"message": "Missing Authentication Token"}
    assert stack.stats()["unauthenticated"] == before + 1


def test_malformed_signature_is_refused(stack: LocalStack) -> None:
    status, headers, body = _raw_post(stack, {"Authorization": "Bearer abc"})
    assert status == 403
    assert headers["x-amzn-errortype"] == "IncompleteSignatureException"
    assert "Credential" in body["message"]


def test_signature_needs_a_date(stack: LocalStack) -> None:
    authorization = "AWS4-HMAC-SHA256 Credential=a/b, SignedHeaders=host, Signature=00"
    status, headers, body = _raw_post(stack, {"Authorization": authorization})
    assert status == 403
    assert headers["x-amzn-errortype"] == "IncompleteSignatureException"
    assert "X-Amz-Date" in body["message"]


def _signed_by_requests_aws4auth(
    stack: LocalStack, key: str, secret: str, *, headers: dict[str, str] | None = None
) -> Any:
    """A call signed by requests-aws4auth, a SigV4 signer that is neither botocore's nor the
    emulator's."""
    import requests
    from requests_aws4auth import AWS4Auth

    return requests.post(
        f"{stack.sagemaker_url}/endpoints/main/async-invocations",
        headers={"X-Amzn-SageMaker-InputLocation": GOOD_INPUT, **(headers or {})},
        auth=AWS4Auth(key, secret, REGION, "sagemaker"),
        timeout=10,
    )


def test_a_signature_from_an_independent_signer_is_accepted(stack: LocalStack) -> None:
    response = _signed_by_requests_aws4auth(stack, *next(iter(CREDENTIALS.items())))
    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"InferenceId"}
    assert response.headers["x-amzn-sagemaker-outputlocation"].startswith("s3://emu-out/results/")


def test_a_signature_with_the_wrong_secret_is_refused(stack: LocalStack) -> None:
    key = next(iter(CREDENTIALS))
    response = _signed_by_requests_aws4auth(stack, key, "not-the-secret")
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "InvalidSignatureException"
    assert "does not match" in response.json()["message"]


def test_an_access_key_the_endpoint_never_handed_out_is_refused(stack: LocalStack) -> None:
    response = _signed_by_requests_aws4auth(stack, "AKIANOSUCHKEY0000000", "whatever")
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "UnrecognizedClientException"


def test_a_body_changed_after_signing_is_refused(stack: LocalStack) -> None:
    import requests
    from requests_aws4auth import AWS4Auth

    request = requests.Request(
        "POST",
        f"{stack.sagemaker_url}/endpoints/main/async-invocations",
        data=b'{"x": 1}',
        auth=AWS4Auth(*next(iter(CREDENTIALS.items())), REGION, "sagemaker"),
    ).prepare()
    request.body = b'{"x": 2}'
    with requests.Session() as session:
        response = session.send(request, timeout=10)
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "InvalidSignatureException"


def test_a_stale_signature_is_refused(stack: LocalStack) -> None:
    # Signed ten minutes ago: past the five minutes of clock skew the service allows.
    stale = datetime.now(UTC) - timedelta(minutes=10)
    response = _signed_by_requests_aws4auth(
        stack, *next(iter(CREDENTIALS.items())), headers={"X-Amz-Date": f"{stale:%Y%m%dT%H%M%SZ}"}
    )
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "InvalidSignatureException"
    assert response.json()["message"].startswith("Signature expired:")


def test_unknown_path(stack: LocalStack) -> None:
    url = urlsplit(stack.sagemaker_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request("POST", "/endpoints/main/invocations")
    response = connection.getresponse()
    response.read()
    assert response.status == 404
    assert response.getheader("x-amzn-ErrorType") == "UnknownOperationException"


def test_a_location_without_a_key_passes_the_models_pattern(runtime: BaseClient) -> None:
    # The model's pattern, ^(https|s3)://([^/]+)/?(.*)$, admits "s3://bucket": the emulator
    # accepts the call, as the service's own validation would, and the attempt fails when
    # the input cannot be read. bulkinvoke's manifest check refuses it before any call.
    accepted = runtime.invoke_endpoint_async(EndpointName="main", InputLocation="s3://bucket")
    assert accepted["ResponseMetadata"]["HTTPStatusCode"] == 202


def test_the_core_and_the_emulator_read_the_same_limits_from_different_places() -> None:
    """The core's hand-written table (``request_options``) against the model data the emulator
    reads: a limit wrong in the core is caught here, not agreed with."""
    from bulkinvoke import request_options as core
    from bulkinvoke.emulator.model import members

    model = members()
    assert model["InferenceId"].maximum == core.INFERENCE_ID_MAX
    assert model["CustomAttributes"].maximum == core.CUSTOM_ATTRIBUTES_MAX
    assert model["ContentType"].maximum == model["Accept"].maximum == core.HEADER_MAX
    assert model["InputLocation"].maximum == core.INPUT_LOCATION_MAX
    assert model["S3OutputPathExtension"].maximum == core.OUTPUT_PATH_EXTENSION_MAX
    assert model["Filename"].maximum == core.FILENAME_MAX
    assert model["EndpointName"].maximum == core.ENDPOINT_NAME_MAX
    ttl, timeout = model["RequestTTLSeconds"], model["InvocationTimeoutSeconds"]
    assert (ttl.minimum, ttl.maximum) == core.REQUEST_TTL_RANGE
    assert (timeout.minimum, timeout.maximum) == core.INVOCATION_TIMEOUT_RANGE
