"""InvokeEndpointAsync over keep-alive connections of its own, at half the client CPU of botocore.

botocore still does everything that decides what goes over the wire: the client resolves the
endpoint URL (region, FIPS, dual-stack, ``AWS_ENDPOINT_URL_*``), the session's credential chain
supplies (and refreshes) the credentials, botocore's serializer builds the request from the
service model, its SigV4 signer signs it, and its parser turns the answer, or the error, into the
same dict or ``ClientError`` subclass a botocore client returns or raises. What is skipped is the
generic per-call pipeline around that (a dozen event emissions, urllib3's pool and retry layers),
which costs as much client CPU as the rest together: ``bench/run.py submit`` measures it.

Handlers registered for ``before-send`` on the botocore client still run (bulkinvoke's pacing is
one), and a response one returns is used instead of sending, as botocore does. The headers that
say which SDK sent a call (``User-Agent``, with the features botocore notes while it makes a
call, and ``amz-sdk-request``) are learned from the first call, which the botocore client makes
itself; ``amz-sdk-invocation-id`` is new for each call, as botocore's.
``tests/test_wire_parity.py`` holds the bytes on the wire against botocore's. Where botocore's
own HTTP stack is needed (a proxy applies to the endpoint, a client certificate is configured),
:func:`direct_client` returns None and the botocore client is used.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import (
    AWSRequest,
    HeadersDict,
    create_request_object,
    prepare_request_dict,
)
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)
from botocore.hooks import first_non_none_response
from botocore.httpsession import create_urllib3_context, get_cert_path
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from botocore.utils import get_environ_proxies

OPERATION = "InvokeEndpointAsync"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CLOSED = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


def direct_client(
    client: Any, session: Any, verify: bool | str | None = None
) -> DirectRuntimeClient | None:
    """A :class:`DirectRuntimeClient` sending what ``client`` (a botocore sagemaker-runtime
    client of boto3 ``session``, made with ``verify``) would send, or None where botocore's
    HTTP stack must send."""
    config = client.meta.config
    url = client.meta.endpoint_url
    # As botocore picks a proxy: the Config's if it has any (even none), else the environment's,
    # for the URL's scheme.
    proxies = config.proxies if config.proxies is not None else get_environ_proxies(url)
    if proxies.get(urlsplit(url).scheme) or config.client_cert:
        return None
    # As botocore.session.Session.create_client, then EndpointCreator, resolve ``verify`` (an
    # empty value was refused when the client was made).
    if verify is None:
        verify = session._session.get_config_variable("ca_bundle")
    if verify is None:
        verify = os.environ.get("REQUESTS_CA_BUNDLE", True)
    return DirectRuntimeClient(client, session.get_credentials(), verify=verify)


class DirectRuntimeClient:
    """The one operation bulkinvoke calls, ``invoke_endpoint_async(**parameters)``, as the
    botocore client it is made from would make it. Thread-safe; one connection per caller at
    a time, kept alive between calls."""

    def __init__(self, client: Any, credentials: Any, *, verify: bool | str = True) -> None:
        self.meta = client.meta
        self.exceptions = client.exceptions
        model = client.meta.service_model
        self._operation = model.operation_model(OPERATION)
        self._serializer = create_serializer(model.protocol, include_validation=False)
        self._parser = create_parser(model.protocol)
        self._signing_name = model.signing_name
        self._region = client.meta.region_name
        self._credentials = credentials
        self._url = client.meta.endpoint_url
        self._send_event = f"before-send.{model.service_id.hyphenize()}.{OPERATION}"
        config = client.meta.config
        self._client = client
        # None until the first call, made by botocore, shows them (see _learn).
        self._sdk_headers: dict[str, str] | None = None
        self._learning = threading.local()
        client.meta.events.register_last(
            self._send_event, self._learn, unique_id=f"bulkinvoke-sdk-headers-{id(self)}"
        )
        self._connect_timeout = config.connect_timeout
        self._read_timeout = config.read_timeout
        self._keepalive = bool(config.tcp_keepalive)
        parts = urlsplit(self._url)
        # The host the signature covers (every request goes to this URL), whatever http.client
        # would write.
        self._host = _host_header(self._url)
        self._address = (parts.hostname or "", parts.port or _DEFAULT_PORTS[parts.scheme])
        self._ssl_context = _ssl_context(verify) if parts.scheme == "https" else None
        # Idle connections, the most recently used last; list.append and list.pop are atomic.
        self._idle: list[http.client.HTTPConnection] = []

    def invoke_endpoint_async(self, **parameters: Any) -> dict[str, Any]:
        if self._sdk_headers is None:
            self._learning.parameters = parameters
            try:
                result: dict[str, Any] = self._client.invoke_endpoint_async(**parameters)
                return result
            finally:
                self._learning.parameters = None
        request = self._signed_request(parameters)
        responses = self.meta.events.emit(self._send_event, request=request)
        answered = first_non_none_response(responses)
        if answered is not None:
            status, headers, body = answered.status_code, answered.headers, answered.content
        else:
            status, headers, body = self._send(request)
        parsed: dict[str, Any] = self._parser.parse(
            {"status_code": status, "headers": headers, "body": body},
            self._operation.output_shape,
        )
        if status >= 300:
            code = parsed.get("Error", {}).get("Code")
            raise self.exceptions.from_code(code)(parsed, OPERATION)
        return parsed

    def _learn(self, request: AWSRequest, **_: Any) -> None:
        """A before-send handler: from a call botocore makes for this client, keep the headers
        botocore adds beyond the serialized request and the signature."""
        parameters = getattr(self._learning, "parameters", None)
        if parameters is None or self._sdk_headers is not None:
            return
        serialized = self._serializer.serialize_to_request(parameters, self._operation)
        own = {name.lower() for name in serialized["headers"]} | _PER_CALL
        self._sdk_headers = {
            name: value.decode() if isinstance(value, bytes) else value
            for name, value in request.headers.items()
            if name.lower() not in own
        }

    def _idle_connection(self) -> http.client.HTTPConnection | None:
        try:
            return self._idle.pop()
        except IndexError:
            return None

    def _signed_request(self, parameters: dict[str, Any]) -> AWSRequest:
        request_dict = self._serializer.serialize_to_request(parameters, self._operation)
        prepare_request_dict(request_dict, self._url)
        request: AWSRequest = create_request_object(request_dict)
        if self._credentials is None:
            raise NoCredentialsError()
        frozen = self._credentials.get_frozen_credentials()
        SigV4Auth(frozen, self._signing_name, self._region).add_auth(request)
        # After signing, as botocore adds them: they are not signed.
        for name, value in (self._sdk_headers or {}).items():
            request.headers[name] = value
        request.headers["amz-sdk-invocation-id"] = str(uuid.uuid4())
        return request

    def _send(self, request: AWSRequest) -> tuple[int, HeadersDict, bytes]:
        url, method = request.url, request.method
        if url is None or method is None:
            raise ValueError("the request has no URL or method: it was not prepared")
        parts = urlsplit(url)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        # Values go out as latin-1, which for them is ASCII: options.py lets no other character
        # into a header parameter.
        headers = dict(request.headers.items())
        headers["Host"] = self._host
        connection = self._connection(url)
        with _closed_on_error(connection, partial(_wire_error, url)):
            connection.request(method, target, body=request.body or b"", headers=headers)
            response = connection.getresponse()
            try:
                body = response.read()
            except http.client.IncompleteRead as cut:
                # A body shorter than its Content-Length is taken as it came, as botocore takes
                # it (urllib3 with enforce_content_length=False): a 202 cut short was still an
                # acceptance, and sending the call again would repeat it.
                body = cut.partial
                response.will_close = True
        if response.will_close:
            connection.close()
        else:
            self._idle.append(connection)
        return response.status, _response_headers(response), body

    def _connection(self, url: str) -> http.client.HTTPConnection:
        """An idle kept-alive connection, or a new one (``url``, the request's, for errors)."""
        while (idle := self._idle_connection()) is not None:
            if idle.sock is not None and not _readable(idle.sock):
                return idle
            # Closed by the server while idle (or sent something unasked): not reusable.
            idle.close()
        host, port = self._address
        if self._ssl_context is not None:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=self._connect_timeout, context=self._ssl_context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        with _closed_on_error(connection, partial(_connect_error, url)):
            connection.connect()
            sock = connection.sock
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._keepalive:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.settimeout(self._read_timeout)
        return connection


# As botocore's URLLib3Session.send, the errors name the request's URL.


def _connect_error(url: str, error: Exception) -> Exception:
    if isinstance(error, ssl.SSLError):
        return SSLError(endpoint_url=url, error=error)
    if isinstance(error, TimeoutError):
        return ConnectTimeoutError(endpoint_url=url, error=error)
    if isinstance(error, OSError):
        return EndpointConnectionError(endpoint_url=url, error=error)
    return HTTPClientError(error=error)


def _wire_error(url: str, error: Exception) -> Exception:
    if isinstance(error, TimeoutError):
        return ReadTimeoutError(endpoint_url=url, error=error)
    if isinstance(error, _CLOSED):
        return ConnectionClosedError(endpoint_url=url)
    if isinstance(error, ssl.SSLError):
        return SSLError(endpoint_url=url, error=error)
    # As botocore's URLLib3Session.send: any other error on the way is an HTTPClientError.
    return HTTPClientError(error=error)


@contextmanager
def _closed_on_error(
    connection: http.client.HTTPConnection, translate: Callable[[Exception], Exception]
) -> Iterator[None]:
    """Close ``connection`` on any error (it is in an unknown state), raising an Exception as
    the botocore error ``translate`` makes of it."""
    try:
        yield
    except Exception as error:
        connection.close()
        raise translate(error) from error
    except BaseException:
        connection.close()
        raise


# Headers botocore sets anew for each call or from what a call carries, and those http.client
# writes itself.
_PER_CALL = {
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "amz-sdk-invocation-id",
    "host",
    "content-length",
}


def _response_headers(response: http.client.HTTPResponse) -> HeadersDict:
    """The answer's headers as botocore gives them to its parser: case-insensitive, a repeated
    header's values joined with ", " (as urllib3 does)."""
    headers = HeadersDict()
    for name, value in response.getheaders():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    context: ssl.SSLContext = create_urllib3_context()
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    path = verify if isinstance(verify, str) else get_cert_path(True)
    if path is None:  # botocore has no bundle of its own here: the system's certificates
        context.load_default_certs()
    elif os.path.isdir(path):
        context.load_verify_locations(capath=path)
    else:
        context.load_verify_locations(cafile=path)
    return context


def _host_header(url: str) -> str:
    """The Host header botocore's signer covers: lower case, IPv6 in brackets, no default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _readable(sock: socket.socket) -> bool:
    """Whether an idle keep-alive socket has something to read: the server closed it."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
