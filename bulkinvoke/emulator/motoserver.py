"""moto's S3, SNS and SQS served over HTTP (or HTTPS) from a background thread of this process."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server


class _Handler(MotoRequestHandler):
    def setup(self) -> None:
        super().setup()
        # werkzeug sends headers and body in separate writes: without this, each small response
        # can wait ~40 ms for the client's delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """One line per request would drown the emulator's own output."""


class MotoServer:
    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        # Bound here so that a port in use is an OSError to report: werkzeug prints it and exits.
        with socket.create_server((host, port)) as listening:
            self._server: BaseWSGIServer = make_server(
                host,
                port,
                app,
                threaded=True,
                request_handler=_Handler,
                fd=listening.fileno(),
                ssl_context=ssl_context,
            )
        self._scheme = "https" if ssl_context is not None else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="emulator-moto", daemon=True
        )

    @property
    def url(self) -> str:
        return f"{self._scheme}://{self._server.host}:{self._server.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
