"""Start and stop everything a run needs on loopback: moto (S3, SNS, SQS) and the endpoints."""

from __future__ import annotations

import http.client
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bulkinvoke.emulator.clients import Clients
from bulkinvoke.emulator.config import EmulatorConfig, EndpointSpec
from bulkinvoke.emulator.server import EmulatorHTTPServer
from bulkinvoke.emulator.service import AsyncInferenceService

if TYPE_CHECKING:
    from bulkinvoke.emulator.motoserver import MotoServer
    from bulkinvoke.emulator.tls import TlsFiles

_READY_TIMEOUT = 10.0


class LocalStack:
    """A running emulator; a context manager that stops it on exit.

    ``sns_url``, ``sqs_url`` and ``cloudwatch_url`` are moto's URL (the same as ``s3_url``)
    when moto was started here; with an external ``s3_url``, they are the ``sns_url`` given to
    ``start_local_stack``, or None.
    """

    def __init__(
        self,
        service: AsyncInferenceService,
        server: EmulatorHTTPServer,
        moto: MotoServer | None,
        s3_url: str,
        sns_url: str | None,
        tls: TlsFiles | None = None,
    ) -> None:
        self._service = service
        self._server = server
        self._moto = moto
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name="emulator-http", daemon=True
        )
        self._thread.start()
        self.s3_url = s3_url
        self.sagemaker_url = server.url
        self.sns_url = sns_url
        self.sqs_url = sns_url
        # Where the endpoints' metrics are published (emulator/metrics.py).
        self.cloudwatch_url = sns_url
        # With HTTPS: the CA bundle that signed both servers' certificates.
        self.tls = tls
        self._stopped = False

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def config(self) -> EmulatorConfig:
        return self._service.config

    def endpoints(self) -> list[EndpointSpec]:
        return self._service.endpoints()

    def stats(self) -> dict[str, Any]:
        return self._service.stats()

    def accepted_ids(self) -> dict[str, int]:
        """How many times each inference ID was accepted since the stack started."""
        return self._service.accepted_ids()

    def configure(self, **changes: Any) -> None:
        """Change settings while running (any EmulatorConfig field; latency may be text)."""
        self._service.configure(**changes)

    def add_endpoint(self, spec: EndpointSpec) -> None:
        """Declare an endpoint; creates its output/failure buckets and topics if missing."""
        self._service.add_endpoint(spec)

    def remove_endpoint(self, name: str) -> None:
        """Delete an endpoint while running: later calls to it fail with "not found"."""
        self._service.remove_endpoint(name)

    def publish_metrics(self) -> None:
        """Publish every endpoint's CloudWatch metrics now (they also go every
        ``EmulatorConfig.metrics_seconds``)."""
        self._service.publish_metrics()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every accepted call has its output or failure; False on timeout."""
        return self._service.wait_idle(timeout)

    def environment(self) -> dict[str, str]:
        """The variables that point boto3 and the aws CLI at this stack."""
        env = {
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.sagemaker_url,
            # The control plane (DescribeEndpoint) is served at the same address.
            "AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker_url,
        }
        if self.sns_url is not None:
            env["AWS_ENDPOINT_URL_SNS"] = self.sns_url
            env["AWS_ENDPOINT_URL_SQS"] = self.sns_url
            env["AWS_ENDPOINT_URL_CLOUDWATCH"] = self.sns_url
        key, secret = next(iter(self.config.credentials.items()))
        if self.tls is not None:
            env["AWS_CA_BUNDLE"] = str(self.tls.ca_bundle)
        env.update(
            AWS_ACCESS_KEY_ID=key,
            AWS_SECRET_ACCESS_KEY=secret,
            AWS_DEFAULT_REGION=self.config.region,
        )
        return env

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(5.0)
        self._service.stop()
        if self._moto is not None:
            self._moto.stop()


def _wait_until_answering(url: str, path: str, tls: TlsFiles | None = None) -> None:
    parts = urlsplit(url)
    deadline = time.monotonic() + _READY_TIMEOUT
    while True:
        try:
            connection: http.client.HTTPConnection
            if parts.scheme == "https":
                context = tls.client_context() if tls is not None else None
                connection = http.client.HTTPSConnection(parts.netloc, timeout=1.0, context=context)
            else:
                connection = http.client.HTTPConnection(parts.netloc, timeout=1.0)
            connection.request("GET", path)
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def start_local_stack(
    endpoints: list[EndpointSpec],
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    s3_port: int = 0,
    sagemaker_port: int = 0,
    s3_url: str | None = None,
    sns_url: str | None = None,
    tls: TlsFiles | None = None,
) -> LocalStack:
    """Start moto (unless ``s3_url`` names a running S3 server) and the endpoint server.

    Both run in daemon threads of this process; this returns once both answer HTTP. Port 0
    picks a free port. With ``s3_url``, SNS is reached at ``sns_url`` if given (None: endpoints
    cannot declare topics). With ``tls`` (see ``tls.write_tls_files``), both serve HTTPS only.
    """
    config = config or EmulatorConfig()
    context = tls.server_context() if tls is not None else None
    moto = None
    if s3_url is None:
        # Imported here: moto is an optional dependency and slow to import.
        from bulkinvoke.emulator.motoserver import MotoServer

        moto = MotoServer(host, s3_port, context)
        moto.start()
        s3_url = sns_url = moto.url
    verify = str(tls.ca_bundle) if tls is not None else None
    service = AsyncInferenceService(config, Clients(s3_url, sns_url, config.region, verify))
    try:
        _wait_until_answering(s3_url, "/", tls)
        for spec in endpoints:
            service.add_endpoint(spec)
        server = EmulatorHTTPServer((host, sagemaker_port), service, context)
    except BaseException:
        service.stop()
        if moto is not None:
            moto.stop()
        raise
    stack = LocalStack(service, server, moto, s3_url, sns_url, tls)
    try:
        _wait_until_answering(stack.sagemaker_url, "/_emulator/stats", tls)
    except BaseException:
        stack.stop()
        raise
    return stack
