"""A fault-injecting HTTP proxy for loopback tests: what moto and the emulator cannot do themselves.

It sits in front of one upstream (moto's S3 port, or the emulator's SageMaker port), reads each
HTTP/1.1 request a client sends on a keep-alive connection, and either relays it or does one of
these to it, chosen per request by a seeded random draw (``faults``) or for every request from
some point on (``fail_all``):

* ``error``: answer 500/503 without relaying (a 5xx storm);
* ``reset_before``: reset the connection without relaying (the call never reached the service);
* ``reset_after``: relay, read the service's answer, then reset the connection (the call was
  accepted, and the client cannot know);
* ``slow``: relay, then hold the answer ``slow_seconds`` before sending it (past the client's
  read timeout, say);
* ``expired``: answer 403 ExpiredToken(Exception), as AWS does once a session token has expired;
* ``signature``: answer 403 SignatureDoesNotMatch with the canonical request echoed, credentials
  included, the way AWS does: a client must not copy that into its logs.

Error bodies follow the upstream's protocol (``flavor``): S3's XML, or the rest-json of
sagemaker-runtime. Every request's headers can be recorded (``record=True``), for checks like
"every S3 call carried x-amz-expected-bucket-owner".
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

Fault = Literal["error", "reset_before", "reset_after", "slow", "expired", "signature"]
Flavor = Literal["s3", "json"]
FAULTS: tuple[Fault, ...] = ("error", "reset_before", "reset_after", "slow", "expired", "signature")
_MAX_LINE = 65536
# Hop-by-hop headers, and those the proxy recomputes when it relays an answer.
_NOT_RELAYED = frozenset({"connection", "keep-alive", "transfer-encoding", "expect", "te"})


@dataclass(frozen=True)
class Seen:
    """One request as the proxy received it, and what it did with it."""

    method: str
    target: str
    headers: dict[str, str]
    fault: Fault | None


@dataclass
class _Settings:
    faults: dict[Fault, float] = field(default_factory=dict)
    fail_all: Fault | None = None
    slow_seconds: float = 2.0


class FaultProxy:
    """A running proxy; a context manager that stops it on exit. ``url`` is what clients use."""

    def __init__(
        self,
        upstream: str,
        *,
        flavor: Flavor,
        seed: int | None = None,
        record: bool = False,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.flavor = flavor
        self.record = record
        self.injected: Counter[str] = Counter()
        self.seen: list[Seen] = []
        self._settings = _Settings()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def configure(
        self,
        *,
        faults: dict[Fault, float] | None = None,
        fail_all: Fault | None = None,
        slow_seconds: float | None = None,
    ) -> None:
        """Set the per-request probability of each fault, or one fault for every request."""
        for name, probability in (faults or {}).items():
            if name not in FAULTS or not 0.0 <= probability <= 1.0:
                raise ValueError(f"bad fault {name!r}: {probability}")
        with self._lock:
            self._settings = _Settings(
                dict(faults or {}),
                fail_all,
                self._settings.slow_seconds if slow_seconds is None else slow_seconds,
            )

    def clear(self) -> None:
        self.configure()

    @property
    def total_injected(self) -> int:
        with self._lock:
            return sum(self.injected.values())

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def _decide(
        self, method: str, target: str, headers: dict[str, str]
    ) -> tuple[Fault | None, float]:
        with self._lock:
            settings = self._settings
            fault = settings.fail_all
            if fault is None:
                draw = self._rng.random()
                for name, probability in settings.faults.items():
                    if draw < probability:
                        fault = name
                        break
                    draw -= probability
            if fault is not None:
                self.injected[fault] += 1
            if self.record:
                self.seen.append(Seen(method, target, dict(headers), fault))
            return fault, settings.slow_seconds

    def stop(self) -> None:
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Connection)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue


class _Reset(Exception):
    """Drop the client's connection with a TCP reset."""


class _Connection(socketserver.StreamRequestHandler):
    server: _Server
    disable_nagle_algorithm = True

    def handle(self) -> None:
        upstream: http.client.HTTPConnection | None = None
        try:
            while True:
                request = self._read_request()
                if request is None:
                    return
                method, target, headers, body = request
                fault, slow_seconds = self.server.proxy._decide(method, target, headers)
                if fault == "reset_before":
                    raise _Reset
                if fault in ("error", "expired", "signature"):
                    status, reason, answer_headers, answer_body = _canned(
                        fault, self.server.proxy.flavor, method, target, headers
                    )
                    # A HEAD answer has no body, whatever the error: S3 sends only the status.
                    self._send(
                        status, reason, answer_headers, b"" if method == "HEAD" else answer_body
                    )
                    continue
                if upstream is None:
                    upstream = http.client.HTTPConnection(*self.server.proxy.upstream, timeout=120)
                status, reason, answer_headers, answer_body = _relay(
                    upstream, method, target, headers, body
                )
                if fault == "reset_after":
                    raise _Reset
                if fault == "slow":
                    time.sleep(slow_seconds)
                self._send(status, reason, answer_headers, answer_body, head=method == "HEAD")
        except _Reset:
            # SO_LINGER with a zero timeout makes close() send RST rather than FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except (OSError, http.client.HTTPException):
            return
        finally:
            if upstream is not None:
                upstream.close()

    def _read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        line = self.rfile.readline(_MAX_LINE)
        if not line:
            return None
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = self.rfile.readline(_MAX_LINE)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip()] = value.strip()
        lowered = {k.lower(): v for k, v in headers.items()}
        if lowered.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        length = int(lowered.get("content-length", "0"))
        body = self.rfile.read(length) if length else b""
        return method, target, headers, body

    def _send(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        head: bool = False,
    ) -> None:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _NOT_RELAYED]
        if not head:
            lines = [line for line in lines if not line.lower().startswith("content-length:")]
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(data + (b"" if head else body))


def _relay(
    upstream: http.client.HTTPConnection,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    relayed = {k: v for k, v in headers.items() if k.lower() not in _NOT_RELAYED}
    upstream.request(method, target, body=body or None, headers=relayed)
    response = upstream.getresponse()
    answer = response.read()
    return response.status, response.reason, response.getheaders(), answer


_SIGNATURE_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


def _canned(
    fault: Fault, flavor: Flavor, method: str, target: str, headers: dict[str, str]
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """The answer AWS gives for ``fault``, in the upstream's protocol."""
    if fault == "error":
        # Alternate, by the request's own bytes, between the two 5xx answers AWS gives.
        if len(target) % 2:
            status, code, message = 500, "InternalError", "We encountered an internal error."
        else:
            status, code, message = 503, "ServiceUnavailable", "Please reduce your request rate."
        if flavor == "json":
            code = "InternalFailure" if status == 500 else "ServiceUnavailable"
    elif fault == "expired":
        status = 403
        code = "ExpiredToken" if flavor == "s3" else "ExpiredTokenException"
        message = "The security token included in the request is expired"
    else:
        status, code, message = 403, "SignatureDoesNotMatch", _SIGNATURE_MESSAGE
    # What AWS echoes of a request it refuses for its signature: the canonical request, every
    # signed header in it, the session token included, and the access key ID.
    canonical = "\n".join(f"{k.lower()}:{v}" for k, v in sorted(headers.items()))
    canonical_request = f"{method}\n{target}\n\n{canonical}"
    authorization = headers.get("Authorization", "")
    access_key = authorization.partition("Credential=")[2].partition("/")[0]
    reason = http.client.responses.get(status, "Error")
    if flavor == "s3":
        extra = ""
        if fault == "signature":
            extra = (
                f"<AWSAccessKeyId>{_xml(access_key)}</AWSAccessKeyId>"
                f"<CanonicalRequest>{_xml(canonical_request)}</CanonicalRequest>"
            )
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{_xml(message)}</Message>{extra}<RequestId>FAULTPROXY</RequestId>"
            "</Error>"
        ).encode()
        return status, reason, [("Content-Type", "application/xml")], body
    if fault == "signature":
        # The JSON services put it all in the message itself.
        message = (
            f"{message}\n\nThe Canonical String for this request should have been\n"
            f"'{canonical_request}'\n"
        )
    body = json.dumps({"message": message}).encode()
    return (
        status,
        reason,
        [
            ("Content-Type", "application/json"),
            ("x-amzn-ErrorType", code),
            ("x-amzn-RequestId", "FAULTPROXY"),
        ],
        body,
    )


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
