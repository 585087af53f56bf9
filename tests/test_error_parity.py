"""Errors as the service sends them, through ``--transport direct`` and ``--transport botocore``.

A scripted server answers each item's attempts in turn from its script: 429 and 400
ThrottlingException, 400 ValidationError, 424 ModelError, 500 InternalFailure, 503
ServiceUnavailable, an HTML 502 from a load balancer, a body cut short, a reset connection, and
acceptance. The same scripts run through the invoker (bulkinvoke's retry policy, no sleeping)
with each transport: every item must end in the same state, after the same retries and
throttles, with the same error text.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bulkinvoke.calls.aws import AwsSettings, Transport, make_clients
from bulkinvoke.calls.invoker import Call, Invoker
from bulkinvoke.calls.limiter import RateLimiter
from bulkinvoke.calls.retry import RetryPolicy
from bulkinvoke.calls.transport import DirectRuntimeClient
from bulkinvoke.request_options import RequestOptions
from tests.loopback import ConnectionServer, read_head


def _http(status: str, headers: list[str], body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    head = [f"HTTP/1.1 {status}", *headers, f"Content-Length: {size}", "", ""]
    return "\r\n".join(head).encode() + body


def _error(status: str, code: str, message: str) -> bytes:
    body = f'{{"message": "{message}"}}'.encode()
    return _http(status, [f"x-amzn-ErrorType: {code}", "Content-Type: application/json"], body)


ANSWERS = {
    "accepted": _http(
        "202 Accepted",
        ["Content-Type: application/json", "X-Amzn-SageMaker-OutputLocation: s3://out/x.out"],
        b'{"InferenceId": "x"}',
    ),
    "429": _error("429 Too Many Requests", "ThrottlingException", "Rate exceeded"),
    "400 throttling": _error("400 Bad Request", "ThrottlingException", "Rate exceeded"),
    "validation": _error("400 Bad Request", "ValidationError", "Value at 'inputLocation' is bad"),
    "model error": _error("424 Failed Dependency", "ModelError", "Received server error (500)"),
    "internal": _error("500 Internal Server Error", "InternalFailure", "An internal failure"),
    "unavailable": _error("503 Service Unavailable", "ServiceUnavailable", "Try again later"),
    "html 502": _http(
        "502 Bad Gateway",
        ["Content-Type: text/html", "Connection: close"],
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    ),
    # Announces 100 bytes, sends 12 and closes.
    "truncated": _http(
        "202 Accepted", ["Content-Type: application/json"], b'{"Inference', length=100
    ),
    "reset": b"",
}
# The throttled ones last: a throttle makes the limiter pace the calls after it.
SCRIPTS: list[list[str]] = [
    ["validation"],
    ["model error"],
    ["internal", "internal", "internal"],
    ["unavailable", "accepted"],
    ["html 502", "accepted"],
    ["truncated", "accepted"],
    ["reset", "accepted"],
    ["reset", "reset", "reset"],
    ["html 502", "html 502", "html 502"],
    ["429", "accepted"],
    ["400 throttling", "400 throttling", "accepted"],
]


class ScriptedServer:
    """Answers each request from the script of the item its inference ID names
    (``<run>-<item>``), one step per attempt; a script's last step repeats."""

    def __init__(self) -> None:
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ConnectionServer(self._serve)
        self.url = self._server.url

    def _serve(self, connection: socket.socket) -> None:
        buffer = b""
        while True:
            read = read_head(connection, buffer)
            if read is None:
                connection.close()
                return
            head, buffer = read
            headers = dict(
                line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
            )
            identifier = headers[b"X-Amzn-SageMaker-Inference-Id"].decode()
            answer = self._next(identifier)
            if answer == "reset":
                # RST rather than FIN: what a load balancer or a dying host does.
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.close()
                return
            connection.sendall(ANSWERS[answer])
            if answer in ("truncated", "html 502"):
                connection.close()
                return

    def _next(self, identifier: str) -> str:
        run, _, item = identifier.rpartition("-")
        script = SCRIPTS[int(item)] if run != "warm" else ["accepted"]
        with self._lock:
            step = self._steps.get(identifier, 0)
            self._steps[identifier] = step + 1
        return script[min(step, len(script) - 1)]

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    running = ScriptedServer()
    yield running
    running.close()


def _outcomes(server: ScriptedServer, transport: Transport) -> list[tuple[Any, ...]]:
    settings = AwsSettings(
        region="us-east-1",
        endpoint_url=server.url,
        transport=transport,
        static_credentials=("AKIDEXAMPLE", "secret"),
        call_timeout=5,
    )
    client = make_clients(settings).sagemaker_runtime
    assert isinstance(client, DirectRuntimeClient) == (transport is Transport.DIRECT)
    invoker = Invoker(
        client,
        "ep",
        limiter=RateLimiter(None),
        policy=RetryPolicy(max_attempts=3, max_throttled_attempts=4, base_delay=0, max_delay=0),
        sleep=lambda _: None,
    )
    # The direct client's first call is botocore's own: every scripted one is its own.
    client.invoke_endpoint_async(EndpointName="ep", InputLocation="s3://in/k", InferenceId="warm-0")
    outcomes = []
    for item in range(len(SCRIPTS)):
        call = Call(item + 1, 1, f"{transport.value}-{item}", "s3://in/k", RequestOptions())
        result = invoker.invoke(call)
        stop = result.stop.describe() if result.stop else None
        outcomes.append((result.state, result.error, result.retries, result.throttles, stop))
    return outcomes


def test_every_item_ends_alike_through_either_transport(server: ScriptedServer) -> None:
    direct = _outcomes(server, Transport.DIRECT)
    botocore = _outcomes(server, Transport.BOTOCORE)
    for script, mine, theirs in zip(SCRIPTS, direct, botocore, strict=True):
        assert mine == theirs, f"{script}: direct {mine} != botocore {theirs}"
    # And the scripts did what they say: throttles counted, rejections and failures seen.
    states = {outcome[0].value for outcome in direct}
    assert {"submitted", "rejected", "failed"} <= states
    assert sum(outcome[3] for outcome in direct) >= 3
