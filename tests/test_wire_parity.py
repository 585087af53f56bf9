"""The bytes on the wire: plain boto3, ``--transport direct`` and ``--transport botocore`` send the
same InvokeEndpointAsync request.

A plain TCP server records each request as it arrives (request line, every header as sent, the
body) and answers 202. The signing clock is frozen, so the signatures can be compared too. The
three requests may differ only in what is per call (``amz-sdk-invocation-id``) and in what
bulkinvoke's client configuration sets on purpose: its User-Agent suffix (``user_agent_extra``)
and ``amz-sdk-request``'s ``max``, 1 because bulkinvoke's own retry policy is the only retry
layer. Direct and botocore transports must agree on everything else, byte for byte; header order
is http.client's versus urllib3's and carries no meaning.

EndpointName's pattern (letters, digits, hyphens) admits nothing that needs escaping in the path;
InputLocation, with a space and ``+`` in its key, and CustomAttributes travel as headers.
"""

from __future__ import annotations

import datetime
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.auth
import pytest

from bulkinvoke import __version__
from bulkinvoke.calls.aws import AwsSettings, Transport, make_clients
from tests.loopback import ConnectionServer, read_head

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLE/session+token=="
PARAMETERS = {
    "EndpointName": "my-endpoint-7",
    "InputLocation": "s3://in-bucket/a dir/k+y=1.json",
    "InferenceId": "bi-0123456789abcdef01234567",
    "Filename": "bi-0123456789abcdef01234567.out",
    "S3OutputPathExtension": "run-7/part",
    "ContentType": "application/json",
    "Accept": "text/csv",
    "CustomAttributes": "trace=abc; user=x,y  z",
    "RequestTTLSeconds": 600,
    "InvocationTimeoutSeconds": 900,
}
_ANSWER = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
    b"X-Amzn-SageMaker-OutputLocation: s3://out/x.out\r\nContent-Length: 19\r\n\r\n"
    b'{"InferenceId":"x"}'
)


@dataclass(frozen=True)
class Captured:
    request_line: bytes
    headers: dict[bytes, bytes]  # lower-case name -> value, as sent
    body: bytes


class Recorder:
    """Records every request on every connection, in order; answers each 202."""

    def __init__(self) -> None:
        self.requests: list[Captured] = []
        self._server = ConnectionServer(self._serve)
        self.url = self._server.url

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        with connection:
            while (read := read_head(connection, buffer)) is not None:
                head, rest = read
                line, *header_lines = head.split(b"\r\n")
                headers = {}
                for header in header_lines:
                    name, _, value = header.partition(b":")
                    assert name.lower() not in headers, f"{name!r} sent twice"
                    headers[name.lower()] = value.strip()
                length = int(headers.get(b"content-length", b"0"))
                while len(rest) < length:
                    rest += connection.recv(65536)
                self.requests.append(Captured(line, headers, rest[:length]))
                buffer = rest[length:]
                connection.sendall(_ANSWER)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    running = Recorder()
    yield running
    running.close()


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    moment = datetime.datetime(2026, 12, 4, 6, 30, 15)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: moment)


def _credentials(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    if token is None:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    else:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)


def _three_requests(recorder: Recorder) -> dict[str, Captured]:
    boto3.Session().client("sagemaker-runtime", endpoint_url=recorder.url).invoke_endpoint_async(
        **PARAMETERS
    )
    botocore_client = make_clients(
        AwsSettings(endpoint_url=recorder.url, transport=Transport.BOTOCORE)
    ).sagemaker_runtime
    botocore_client.invoke_endpoint_async(**PARAMETERS)
    direct = make_clients(AwsSettings(endpoint_url=recorder.url)).sagemaker_runtime
    # The direct client's first call is botocore's own (it learns the SDK's headers from it);
    # the second is the direct client's.
    direct.invoke_endpoint_async(**PARAMETERS)
    direct.invoke_endpoint_async(**PARAMETERS)
    requests = recorder.requests
    assert len(requests) == 4
    return {"boto3": requests[0], "botocore": requests[1], "direct": requests[3]}


def _without(headers: dict[bytes, bytes], *names: bytes) -> dict[bytes, bytes]:
    return {name: value for name, value in headers.items() if name not in names}


@pytest.mark.parametrize("token", [None, TOKEN], ids=["plain", "session-token"])
def test_direct_and_botocore_send_the_same_bytes_as_boto3(
    recorder: Recorder, frozen_clock: None, monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    _credentials(monkeypatch, token)
    sent = _three_requests(recorder)
    direct, botocore_sent, plain = sent["direct"], sent["botocore"], sent["boto3"]

    for request in sent.values():
        assert request.request_line == (b"POST /endpoints/my-endpoint-7/async-invocations HTTP/1.1")
        assert request.body == b""
        assert request.headers[b"content-length"] == b"0"
        assert b"expect" not in request.headers and b"transfer-encoding" not in request.headers
        assert request.headers.get(b"x-amz-security-token") == (token.encode() if token else None)
        # A fresh UUID each call.
        assert len(request.headers[b"amz-sdk-invocation-id"]) == 36

    # The two transports: the same bytes but the per-call ID.
    per_call = b"amz-sdk-invocation-id"
    assert _without(direct.headers, per_call) == _without(botocore_sent.headers, per_call)
    assert direct.headers[per_call] != botocore_sent.headers[per_call]

    # Against plain boto3: the same request and signature; bulkinvoke's configuration shows in
    # its User-Agent suffix and in amz-sdk-request (no botocore retries: max=1).
    configured = (per_call, b"user-agent", b"amz-sdk-request")
    assert _without(direct.headers, *configured) == _without(plain.headers, *configured)
    assert direct.headers[b"authorization"] == plain.headers[b"authorization"]
    suffix = f" bulkinvoke/{__version__}".encode()
    assert direct.headers[b"user-agent"] == plain.headers[b"user-agent"] + suffix
    assert direct.headers[b"amz-sdk-request"] == b"attempt=1; max=1"
    assert plain.headers[b"amz-sdk-request"].startswith(b"attempt=1; max=")


def test_every_call_of_the_direct_client_carries_a_new_invocation_id(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    _credentials(monkeypatch, None)
    direct = make_clients(AwsSettings(endpoint_url=recorder.url)).sagemaker_runtime
    for n in range(4):
        direct.invoke_endpoint_async(**{**PARAMETERS, "InferenceId": f"id-{n}"})
    ids = [r.headers[b"amz-sdk-invocation-id"] for r in recorder.requests]
    assert len(set(ids)) == 4
    sdk_requests: set[Any] = {r.headers[b"amz-sdk-request"] for r in recorder.requests}
    assert sdk_requests == {b"attempt=1; max=1"}
