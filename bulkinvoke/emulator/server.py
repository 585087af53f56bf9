"""The HTTP front of the emulated SageMaker runtime: one thread per keep-alive connection.

Kept lean because it must not be the bottleneck of a benchmark: a minimal HTTP/1.1 reader
(http.server's email-based header parsing costs more than the whole accept path), keep-alive,
each response written with one send and a Content-Length, TCP_NODELAY on each connection
(otherwise Nagle's algorithm and the client's delayed ACK add ~40 ms stalls), and no S3 work on
this path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import socketserver
import ssl
import threading
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from bulkinvoke.emulator.admin import PREFIX as ADMIN_PREFIX
from bulkinvoke.emulator.admin import handle_admin
from bulkinvoke.emulator.control import is_control_plane
from bulkinvoke.emulator.service import AsyncInferenceService
from bulkinvoke.emulator.wire import (
    FAILURE_LOCATION_HEADER,
    OUTPUT_LOCATION_HEADER,
    ServiceError,
)

log = logging.getLogger(__name__)
_INVOCATION_PATH = re.compile(r"/endpoints/([^/]+)/async-invocations")
_MAX_LINE = 65536
_MAX_HEADERS = 100
# A body this large is refused without being read (Body's limit is 128000 bytes).
_MAX_BODY = 1 << 20
_UNKNOWN_OPERATION = ServiceError(404, "UnknownOperationException", "Unknown operation")
Headers = list[tuple[str, str]]


class _BadRequest(Exception):
    """The bytes on the connection are not HTTP/1.x we can answer; reply 400 and close."""


class _Connection(socketserver.StreamRequestHandler):
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    def handle(self) -> None:
        try:
            while self._handle_one():
                pass
        except _BadRequest as exc:
            self._send(400, [("Connection", "close")], json.dumps({"message": str(exc)}).encode())
        except OSError:
            pass  # the client went away

    def _handle_one(self) -> bool:
        """Answer one request; False when the connection should close."""
        line = self.rfile.readline(_MAX_LINE + 1)
        while line in (b"\r\n", b"\n"):  # tolerated between requests (RFC 9112 2.2)
            line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            return False
        parts = line.split()
        if len(parts) != 3 or len(line) > _MAX_LINE or not parts[2].startswith(b"HTTP/1."):
            raise _BadRequest("malformed request line")
        method, target = parts[0].decode("latin-1"), parts[1].decode("latin-1")
        headers = self._read_headers()
        keep_alive = parts[2] == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "transfer-encoding" in headers:
            raise _BadRequest("chunked request bodies are not supported; send Content-Length")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest("bad Content-Length") from None
        if not 0 <= length <= _MAX_BODY:
            raise _BadRequest(f"Content-Length must be 0 to {_MAX_BODY}")
        if headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            return False
        try:
            status, response_headers, payload = self._dispatch(method, target, headers, body)
        except Exception:
            log.exception("unexpected error on %s %s", method, target)
            status, response_headers, payload = ServiceError(
                500, "InternalFailure", "An internal failure occurred."
            ).response()
        if not keep_alive:
            response_headers.append(("Connection", "close"))
        self._send(status, response_headers, payload)
        return keep_alive

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        while True:
            line = self.rfile.readline(_MAX_LINE + 1)
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, colon, value = line.partition(b":")
            if not colon or len(line) > _MAX_LINE or len(headers) >= _MAX_HEADERS:
                raise _BadRequest("malformed or too many headers")
            # latin-1 keeps every byte: a non-ASCII value then fails validation, as it should.
            key = name.strip().lower().decode("latin-1")
            headers[key] = value.strip(b" \t\r\n").decode("latin-1")

    def _dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Headers, bytes]:
        path = target.partition("?")[0]
        if path.startswith(ADMIN_PREFIX):
            status, data = handle_admin(self.server.service, method, path, body)
            return status, [], json.dumps(data).encode()
        raw_path, _, raw_query = target.partition("?")
        if is_control_plane(method, path, headers):
            return self.server.service.control(headers, body, raw_path, raw_query)
        match = _INVOCATION_PATH.fullmatch(path)
        if match is None or method != "POST":
            return _UNKNOWN_OPERATION.response()
        try:
            accepted = self.server.service.invoke(
                unquote(match.group(1)), headers, body, raw_path=raw_path, raw_query=raw_query
            )
        except ServiceError as error:
            return error.response()
        response_headers = [(OUTPUT_LOCATION_HEADER, accepted.output_location)]
        if accepted.failure_location is not None:
            response_headers.append((FAILURE_LOCATION_HEADER, accepted.failure_location))
        payload = b'{"InferenceId":' + json.dumps(accepted.inference_id).encode() + b"}"
        return 202, response_headers, payload

    def _send(self, status: int, headers: Headers, body: bytes) -> None:
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if not any(name == "Content-Type" for name, _ in headers):
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
        head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
        self.wfile.write(head + body)


class EmulatorHTTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Benchmarks open many connections at once; the default backlog of 5 drops some.
    request_queue_size = 1024

    def __init__(
        self,
        address: tuple[str, int],
        service: AsyncInferenceService,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.service = service
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Connection)
        self._scheme = "http"
        if ssl_context is not None:
            # The handshake happens on a connection's first read, in its own thread: a client
            # that never completes it holds up no one else.
            self.socket = ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
            self._scheme = "https"

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"{self._scheme}://{host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End the keep-alive connections still open, so their threads finish."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
