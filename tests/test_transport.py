"""The direct transport sends what botocore would send and returns or raises what botocore would.

What botocore would send is captured from a real botocore client (a ``before-send`` handler
answers instead of the network) with the signing clock frozen, so the two requests, signatures
included, can be compared exactly. On the wire, a loopback server records the raw bytes and checks
each signature with an independent SigV4 implementation written from AWS's specification.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from bulkinvoke.calls.aws import AwsSettings, Transport, make_clients
from bulkinvoke.calls.retry import ErrorKind, classify
from bulkinvoke.calls.transport import DirectRuntimeClient, _host_header, direct_client
from bulkinvoke.emulator.tls import write_tls_files

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
PARAMETERS = {
    "EndpointName": "my-endpoint",
    "InputLocation": "s3://in-bucket/a dir/k+y=1.json",
    "InferenceId": "bi-0123456789abcdef01234567",
    "Filename": "bi-0123456789abcdef01234567.out",
}
ALL_PARAMETERS = {
    **PARAMETERS,
    "ContentType": "application/json",
    "Accept": "text/csv",
    "CustomAttributes": "trace=abc; user=x,y  z",
    "RequestTTLSeconds": 600,
    "InvocationTimeoutSeconds": 900,
    "S3OutputPathExtension": "run-7/part",
}
# Headers that differ from one call to the next, and Content-Length, which http.client writes
# for the direct client (tests/test_wire_parity.py compares the bytes on the wire, with it).
_PER_CALL_HEADERS = {"amz-sdk-invocation-id", "content-length"}


class _Body:
    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


def _answer(status: int, headers: dict[str, str], body: bytes = b"") -> Callable[..., Any]:
    def answer(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, status, headers, _Body(body))

    return answer


def _session(token: str | None = None, region: str = "us-west-2") -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
        region_name=region,
    )


def _botocore_client(session: boto3.Session, url: str | None, **config: Any) -> Any:
    return session.client(
        "sagemaker-runtime",
        endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=False, **config),
    )


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    moment = datetime.datetime(2026, 11, 27, 6, 30, 15)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: moment)


def _capture_requests(client: Any) -> list[Any]:
    """The requests about to be sent through ``client``'s events, each answered 202."""
    captured: list[Any] = []

    def capture(request: Any, **_: Any) -> AWSResponse:
        captured.append(request)
        return AWSResponse(request.url, 202, {}, _Body(b"{}"))

    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpointAsync", capture)
    return captured


def _both_requests(
    session: boto3.Session, url: str | None, parameters: dict[str, Any]
) -> tuple[Any, Any]:
    """(what botocore sends, what the direct client sends) for the same call."""
    client = _botocore_client(session, url)
    captured = _capture_requests(client)
    client.invoke_endpoint_async(**parameters)
    direct = direct_client(client, session)
    assert direct is not None
    # Its first call is botocore's own (it learns the SDK's headers from it); the next its own.
    direct.invoke_endpoint_async(**parameters)
    direct.invoke_endpoint_async(**parameters)
    return captured[0], captured[2]


def _headers(request: Any) -> dict[str, str]:
    return {
        name.lower(): value.decode() if isinstance(value, bytes) else value
        for name, value in request.headers.items()
        if name.lower() not in _PER_CALL_HEADERS
    }


@pytest.mark.parametrize(
    "url",
    [
        None,  # the regional AWS endpoint botocore resolves
        "http://127.0.0.1:8123",
        "https://Runtime.Example.com:443/",
        "http://[::1]:8080",
        "https://vpce-1.runtime.sagemaker.eu-west-1.vpce.amazonaws.com",
    ],
)
@pytest.mark.parametrize("token", [None, "session-token/with+chars="])
@pytest.mark.parametrize("parameters", [PARAMETERS, ALL_PARAMETERS], ids=["required", "all"])
def test_the_request_is_botocores_signature_included(
    frozen_clock: None, url: str | None, token: str | None, parameters: dict[str, Any]
) -> None:
    botocore_request, direct_request = _both_requests(_session(token), url, parameters)
    assert direct_request.method == botocore_request.method == "POST"
    assert direct_request.url == botocore_request.url
    assert not direct_request.body and not botocore_request.body
    assert _headers(direct_request) == _headers(botocore_request)
    assert "authorization" in _headers(direct_request)


def test_the_region_and_fips_endpoint_come_from_botocore(frozen_clock: None) -> None:
    session = _session(region="eu-central-1")
    client = _botocore_client(session, None, use_fips_endpoint=True)
    direct = direct_client(client, session)
    assert direct is not None
    captured = _capture_requests(client)
    direct.invoke_endpoint_async(**PARAMETERS)
    assert captured[0].url.startswith("https://runtime-fips.sagemaker.eu-central-1.amazonaws.com/")
    assert "/eu-central-1/sagemaker/aws4_request" in _headers(captured[0])["authorization"]


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (400, "ValidationError", "Value 'x' at 'inputLocation' failed to satisfy constraint"),
        (429, "ThrottlingException", "Rate exceeded"),
        (500, "InternalFailure", "An internal error occurred"),
        (503, "ServiceUnavailable", "Service is unavailable"),
        (404, "UnknownOperationException", None),
    ],
)
def test_errors_are_botocores(status: int, code: str, message: str | None) -> None:
    body = b"{}" if message is None else f'{{"message": "{message}"}}'.encode()
    headers = {"x-amzn-errortype": f"{code}:http://internal.amazon.com/", "x-amzn-requestid": "r1"}
    session = _session()
    client = _botocore_client(session, "http://127.0.0.1:9")
    client.meta.events.register(
        "before-send.sagemaker-runtime.InvokeEndpointAsync", _answer(status, headers, body)
    )
    direct = direct_client(client, session)
    assert direct is not None
    with pytest.raises(ClientError) as by_botocore:
        client.invoke_endpoint_async(**PARAMETERS)
    with pytest.raises(ClientError) as by_direct:
        direct.invoke_endpoint_async(**PARAMETERS)
    assert type(by_direct.value) is type(by_botocore.value)
    assert by_direct.value.response["Error"] == by_botocore.value.response["Error"]
    assert classify(by_direct.value) == classify(by_botocore.value)


def test_an_answer_is_parsed_as_botocore_parses_it() -> None:
    headers = {
        "X-Amzn-SageMaker-OutputLocation": "s3://out/x.out",
        "X-Amzn-SageMaker-FailureLocation": "s3://fail/x-error.out",
        "x-amzn-RequestId": "req-1",
    }
    session = _session()
    client = _botocore_client(session, "http://127.0.0.1:9")
    client.meta.events.register(
        "before-send.sagemaker-runtime.InvokeEndpointAsync",
        _answer(202, headers, b'{"InferenceId": "bi-1"}'),
    )
    direct = direct_client(client, session)
    assert direct is not None
    by_botocore = client.invoke_endpoint_async(**PARAMETERS)
    by_direct = direct.invoke_endpoint_async(**PARAMETERS)
    for answer in (by_botocore, by_direct):
        answer["ResponseMetadata"].pop("RetryAttempts", None)
        answer["ResponseMetadata"].pop("MaxAttemptsReached", None)
    assert by_direct == by_botocore
    assert by_direct["OutputLocation"] == "s3://out/x.out"
    assert by_direct["ResponseMetadata"]["RequestId"] == "req-1"


def test_no_credentials_is_botocores_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.Session(region_name="us-west-2")
    client = _botocore_client(session, "http://127.0.0.1:9")
    direct = DirectRuntimeClient(client, session.get_credentials())
    for _ in range(2):  # the first call is botocore's own; the others the direct client's
        with pytest.raises(NoCredentialsError) as raised:
            direct.invoke_endpoint_async(**PARAMETERS)
        assert classify(raised.value).kind is ErrorKind.SYSTEMIC


@pytest.mark.parametrize(
    "url",
    [
        "https://runtime.sagemaker.us-east-1.amazonaws.com",
        "https://Runtime.Example.COM:443/prefix",
        "http://example.com:80",
        "http://example.com:443",
        "https://example.com:80",
        "http://127.0.0.1:8123",
        "http://[::1]:8080/",
        "https://[2001:db8::1]",
        "https://user:secret@host.example.com:8443",
        "https://host.example.com./",
    ],
)
def test_the_host_header_is_the_one_botocore_signs(url: str) -> None:
    assert _host_header(url) == botocore.auth._host_from_url(url)


# -- on the wire ----------------------------------------------------------------------------


@dataclass
class _Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int


@dataclass
class _Server:
    """A loopback HTTP/1.1 server that records what it receives and answers as ``behaviour``
    says: "answer" (202, kept alive), "close after answer", "close" (no answer), "hang", or
    "canned" (the bytes of ``canned``, then closes if they say ``Connection: close``)."""

    behaviour: str = "answer"
    tls: ssl.SSLContext | None = None
    canned: bytes = b""
    received: list[_Received] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock, self.connections), daemon=True).start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            stream = sock.makefile("rb")
            while True:
                line = stream.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = stream.read(int(headers.get("content-length", "0")))
                self.received.append(_Received(method, target, headers, body, number))
                if self.behaviour == "hang":
                    self._stop.wait(5)
                    return
                if self.behaviour == "close":
                    return
                if self.behaviour == "canned":
                    sock.sendall(self.canned)
                    if b"connection: close" in self.canned.lower():
                        return
                    continue
                inference_id = headers.get("x-amzn-sagemaker-inference-id", "")
                payload = f'{{"InferenceId": "{inference_id}"}}'.encode()
                sock.sendall(
                    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                    b"X-Amzn-SageMaker-OutputLocation: s3://out/" + inference_id.encode() + b"\r\n"
                    b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
                )
                if self.behaviour == "close after answer":
                    return
        except OSError:
            return
        finally:
            sock.close()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    yield running
    running.stop()


def _direct(url: str, server: _Server | None = None, **config: Any) -> DirectRuntimeClient:
    """A direct client of ``url``; with ``server``, past its first call (botocore's own, which
    teaches it the SDK's headers), with the server's counts reset."""
    session = _session(token="tok")
    direct = direct_client(_botocore_client(session, url, **config), session)
    assert direct is not None
    if server is not None:
        direct.invoke_endpoint_async(**PARAMETERS)
        server.received.clear()
        server.connections = 0
    return direct


def _sigv4_signature(received: _Received, host_header: str) -> tuple[str, str]:
    """(signature sent, signature expected), the latter computed from the bytes received as
    AWS's Signature Version 4 specification says, for a request with no query string."""
    authorization = received.headers["authorization"]
    algorithm, _, fields = authorization.partition(" ")
    assert algorithm == "AWS4-HMAC-SHA256"
    parts = dict(part.strip().split("=", 1) for part in fields.split(","))
    credential_scope = parts["Credential"].split("/", 1)[1]
    date, region, service, _ = credential_scope.split("/")
    signed = parts["SignedHeaders"].split(";")
    assert "host" in signed and received.headers["host"] == host_header
    canonical_headers = "".join(
        f"{name}:{' '.join(received.headers[name].split())}\n" for name in signed
    )
    canonical_request = "\n".join(
        [
            received.method,
            received.target,
            "",
            canonical_headers,
            parts["SignedHeaders"],
            hashlib.sha256(received.body).hexdigest(),
        ]
    )
    string_to_sign = "\n".join(
        [
            algorithm,
            received.headers["x-amz-date"],
            credential_scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{SECRET}".encode()
    for step in (date, region, service, "aws4_request"):
        key = hmac.new(key, step.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return parts["Signature"], expected


def test_calls_share_one_kept_alive_connection_and_each_is_signed(server: _Server) -> None:
    direct = _direct(server.url, server)
    for n in range(5):
        answer = direct.invoke_endpoint_async(**{**ALL_PARAMETERS, "InferenceId": f"id-{n}"})
        assert answer["OutputLocation"] == f"s3://out/id-{n}"
        assert answer["InferenceId"] == f"id-{n}"
    assert server.connections == 1
    assert [r.headers["x-amzn-sagemaker-inference-id"] for r in server.received] == [
        f"id-{n}" for n in range(5)
    ]
    for received in server.received:
        assert received.target == "/endpoints/my-endpoint/async-invocations"
        assert received.headers["content-length"] == "0"
        assert received.headers["x-amzn-sagemaker-custom-attributes"] == "trace=abc; user=x,y  z"
        sent, expected = _sigv4_signature(received, f"127.0.0.1:{server.port}")
        assert sent == expected


def test_a_connection_the_server_closed_while_idle_is_replaced(server: _Server) -> None:
    server.behaviour = "close after answer"
    direct = _direct(server.url, server)
    for n in range(3):
        direct.invoke_endpoint_async(**{**PARAMETERS, "InferenceId": f"id-{n}"})
        time.sleep(0.05)  # the server's close reaches the client before the next call
    assert server.connections == 3
    assert len(server.received) == 3


def test_concurrent_callers_each_get_their_own_answer(server: _Server) -> None:
    direct = _direct(server.url, server)
    answers: dict[int, list[str]] = {n: [] for n in range(8)}
    errors: list[BaseException] = []

    def caller(n: int) -> None:
        try:
            for call in range(25):
                inference_id = f"caller-{n}-call-{call}"
                answer = direct.invoke_endpoint_async(**{**PARAMETERS, "InferenceId": inference_id})
                answers[n].append(answer["InferenceId"])
        except BaseException as error:  # a thread's error would otherwise be lost
            errors.append(error)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert answers == {n: [f"caller-{n}-call-{call}" for call in range(25)] for n in range(8)}
    # Connections are reused: at most one per caller, not one per call.
    assert server.connections <= 8
    assert len(server.received) == 200


def test_an_error_of_any_other_kind_is_an_http_client_error_as_in_botocore(
    server: _Server,
) -> None:
    # http.client refuses a header value with a line break before sending anything.
    parameters = {**PARAMETERS, "ContentType": "text/plain\r\nX-Other: 1"}
    with pytest.raises(HTTPClientError) as raised:
        _direct(server.url).invoke_endpoint_async(**parameters)
    assert classify(raised.value).kind is ErrorKind.TRANSIENT
    assert server.received == []


def _http(status: str, headers: list[str], body: bytes) -> bytes:
    head = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(head).encode() + body


_ANSWERS = {
    "accepted": _http(
        "202 Accepted",
        [
            "Content-Type: application/json",
            "X-Amzn-SageMaker-OutputLocation: s3://out/x.out",
            "x-amzn-RequestId: r-1",
        ],
        b'{"InferenceId": "x"}',
    ),
    "throttled, mixed-case error type": _http(
        "400 Bad Request",
        [
            "X-Amzn-ErrorType: ThrottlingException:http://internal.amazon.com/",
            "Content-Type: application/json",
        ],
        b'{"message": "Rate exceeded"}',
    ),
    "validation error": _http(
        "400 Bad Request",
        ["x-amzn-errortype: ValidationError", "Content-Type: application/json"],
        b'{"message": "Endpoint x of account 1 not found."}',
    ),
    "HTML from a load balancer, connection closed": _http(
        "502 Bad Gateway",
        ["Content-Type: text/html", "Connection: close"],
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    ),
    "chunked 503": (
        b"HTTP/1.1 503 Service Unavailable\r\nx-amzn-errortype: ServiceUnavailable\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'10\r\n{"message": "bus\r\n3\r\ny"}\r\n0\r\n\r\n'
    ),
}


@pytest.mark.parametrize("answer", list(_ANSWERS), ids=list(_ANSWERS))
def test_answers_on_the_wire_come_back_as_botocore_returns_or_raises_them(
    server: _Server, answer: str
) -> None:
    server.behaviour, server.canned = "canned", _ANSWERS[answer]
    session = _session()
    botocore_client = _botocore_client(session, server.url)
    direct = direct_client(botocore_client, session)
    assert direct is not None
    outcomes = []
    for client in (botocore_client, direct):
        try:
            result = client.invoke_endpoint_async(**PARAMETERS)
        except ClientError as error:
            outcomes.append((type(error), error.response["Error"], classify(error)))
        else:
            for ignored in ("RetryAttempts", "MaxAttemptsReached", "HTTPHeaders"):
                result["ResponseMetadata"].pop(ignored, None)
            outcomes.append(result)
    assert outcomes[0] == outcomes[1]
    assert len(server.received) == 2


def test_no_listener_is_an_endpoint_connection_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(EndpointConnectionError) as raised:
        _direct(f"http://127.0.0.1:{port}").invoke_endpoint_async(**PARAMETERS)
    assert classify(raised.value).kind is ErrorKind.TRANSIENT


def test_no_answer_within_the_read_timeout_is_a_read_timeout(server: _Server) -> None:
    server.behaviour = "hang"
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError) as raised:
        _direct(server.url, read_timeout=0.3).invoke_endpoint_async(**PARAMETERS)
    assert time.monotonic() - started < 3
    assert classify(raised.value).kind is ErrorKind.TRANSIENT


def test_a_connection_closed_without_an_answer_is_connection_closed(server: _Server) -> None:
    server.behaviour = "close"
    with pytest.raises(ConnectionClosedError) as raised:
        _direct(server.url).invoke_endpoint_async(**PARAMETERS)
    assert classify(raised.value).kind is ErrorKind.TRANSIENT


def test_tls_verifies_against_the_ca_bundle_botocore_would_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CA of its own and a certificate for 127.0.0.1, as the emulator's --tls makes them.
    files = write_tls_files(tmp_path, ("127.0.0.1",))
    server = _Server(tls=files.server_context())
    try:
        with pytest.raises(SSLError):
            _direct(server.url).invoke_endpoint_async(**PARAMETERS)
        monkeypatch.setenv("AWS_CA_BUNDLE", str(files.ca_bundle))
        answer = _direct(server.url).invoke_endpoint_async(**PARAMETERS)
        assert answer["InferenceId"] == PARAMETERS["InferenceId"]
        sent, expected = _sigv4_signature(server.received[-1], f"127.0.0.1:{server.port}")
        assert sent == expected
    finally:
        server.stop()


# -- when botocore sends instead ------------------------------------------------------------


def test_a_proxy_or_client_certificate_means_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    session = _session()
    url = "https://runtime.sagemaker.us-west-2.amazonaws.com"
    assert direct_client(_botocore_client(session, url), session) is not None
    proxied = _botocore_client(session, url, proxies={"https": "http://proxy:3128"})
    assert direct_client(proxied, session) is None
    with_certificate = _botocore_client(session, url, client_cert="/tmp/cert.pem")
    assert direct_client(with_certificate, session) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert direct_client(_botocore_client(session, url), session) is None
    monkeypatch.setenv("NO_PROXY", "runtime.sagemaker.us-west-2.amazonaws.com")
    assert direct_client(_botocore_client(session, url), session) is not None
    # A proxy for another scheme, or a Config that says "no proxy", is no proxy for this URL.
    monkeypatch.delenv("NO_PROXY")
    assert direct_client(_botocore_client(session, "http://127.0.0.1:8123"), session) is not None
    assert direct_client(_botocore_client(session, url, proxies={}), session) is not None


def test_the_embedded_emulators_clients_ignore_the_users_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    local = AwsSettings(
        region="us-east-1",
        endpoint_url="http://127.0.0.1:8123",
        s3_endpoint_url="http://127.0.0.1:8124",
        static_credentials=("local", "local"),
    )
    clients = make_clients(local)
    assert isinstance(clients.sagemaker_runtime, DirectRuntimeClient)
    assert clients.s3.meta.config.proxies == {}


def test_transport_botocore_keeps_the_botocore_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    settings = AwsSettings(region="us-east-1", endpoint_url="http://127.0.0.1:9")
    assert isinstance(make_clients(settings).sagemaker_runtime, DirectRuntimeClient)
    botocore_only = AwsSettings(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", transport=Transport.BOTOCORE
    )
    assert not isinstance(make_clients(botocore_only).sagemaker_runtime, DirectRuntimeClient)
    assert AwsSettings.from_config(botocore_only.to_config()) == botocore_only
