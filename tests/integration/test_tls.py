"""TLS as AWS serves it: the emulator over HTTPS only (``--tls``), with a CA of its own.

A whole submit runs with the CA given by ``AWS_CA_BUNDLE`` or ``--ca-bundle``; a wrong CA is
refused with one clear line and exit 4; a certificate for another host name is refused; the
client sends the host name it connects to (SNI); ``--no-verify-ssl`` works, with a warning; and
``HTTPS_PROXY`` through a CONNECT proxy works (botocore's HTTP stack sends, as the README says).
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkinvoke.emulator import EndpointSpec, LocalStack
from bulkinvoke.emulator.tls import TlsFiles, write_tls_files
from tests.loopback import ConnectionServer, read_head, s3_client, serve_stack, upload_dataset

from .conftest import FAKE_CREDENTIALS, INPUT_BUCKET, OUTPUT_BUCKET


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    tls = write_tls_files(tmp_path_factory.mktemp("tls"))
    endpoints = [EndpointSpec("demo", f"s3://{OUTPUT_BUCKET}/out", f"s3://{OUTPUT_BUCKET}/fail")]
    yield from serve_stack(endpoints, FAKE_CREDENTIALS, INPUT_BUCKET, tls)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return write_tls_files(tmp_path_factory.mktemp("other-ca"))


def _env(stack: LocalStack, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(FAKE_CREDENTIALS)
    env.update(
        AWS_ENDPOINT_URL_S3=stack.s3_url,
        AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=stack.sagemaker_url,
        AWS_ENDPOINT_URL_SAGEMAKER=stack.sagemaker_url,
        AWS_ENDPOINT_URL_CLOUDWATCH=stack.s3_url,
    )
    env.update(more)
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bulkinvoke", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _submit(stack: LocalStack, tmp_path: Path, env: dict[str, str], *more: str) -> Any:
    tmp_path.mkdir(exist_ok=True)
    data = upload_dataset(s3_client(stack), INPUT_BUCKET, tmp_path, 5)
    run_dir = tmp_path / "run"
    done = _cli(env, "submit", str(data.manifest), "--endpoint", "demo", "--run-dir",
                str(run_dir), "--json", *more)  # fmt: skip
    return done, run_dir


def test_the_emulator_serves_https_only(tls_stack: LocalStack) -> None:
    assert tls_stack.sagemaker_url.startswith("https://")
    assert tls_stack.s3_url.startswith("https://")
    assert tls_stack.environment()["AWS_CA_BUNDLE"] == str(tls_stack.tls.ca_bundle)  # type: ignore[union-attr]


@pytest.mark.parametrize("transport", ["direct", "botocore"])
def test_a_whole_run_over_https_with_aws_ca_bundle(
    tls_stack: LocalStack, tmp_path: Path, transport: str
) -> None:
    assert tls_stack.tls is not None
    env = _env(tls_stack, AWS_CA_BUNDLE=str(tls_stack.tls.ca_bundle))
    done, run_dir = _submit(tls_stack, tmp_path, env, "--transport", transport)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["succeeded"] == 5
    collected = _cli(env, "collect", str(run_dir), "--json")
    assert collected.returncode == 0, collected.stderr


def test_ca_bundle_option_wins_over_the_environment(
    tls_stack: LocalStack, other_ca: TlsFiles, tmp_path: Path
) -> None:
    assert tls_stack.tls is not None
    env = _env(tls_stack, AWS_CA_BUNDLE=str(other_ca.ca_bundle))
    done, run_dir = _submit(tls_stack, tmp_path, env, "--ca-bundle", str(tls_stack.tls.ca_bundle))
    assert done.returncode == 0, done.stderr
    # Saved with the run: resume finds the endpoint's CA again.
    resumed = _cli(env, "resume", str(run_dir), "--json")
    assert resumed.returncode == 0, resumed.stderr


def test_a_wrong_ca_is_refused_with_one_clear_line_and_exit_4(
    tls_stack: LocalStack, other_ca: TlsFiles, tmp_path: Path
) -> None:
    env = _env(tls_stack, AWS_CA_BUNDLE=str(other_ca.ca_bundle))
    done, _ = _submit(tls_stack, tmp_path, env)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    assert "certificate verify failed" in done.stderr
    assert "--ca-bundle" in done.stderr


def test_no_verify_ssl_works_and_warns(
    tls_stack: LocalStack, other_ca: TlsFiles, tmp_path: Path
) -> None:
    env = _env(tls_stack, AWS_CA_BUNDLE=str(other_ca.ca_bundle))
    done, _ = _submit(tls_stack, tmp_path, env, "--no-verify-ssl")
    assert done.returncode == 0, done.stderr
    assert "--no-verify-ssl: TLS certificates are not verified" in done.stderr
    assert "InsecureRequestWarning" not in done.stderr


def test_a_certificate_for_another_host_name_is_refused(tmp_path: Path) -> None:
    tls = write_tls_files(tmp_path / "tls", names=("127.0.0.1",))
    endpoints = [EndpointSpec("demo", f"s3://{OUTPUT_BUCKET}/out")]
    for stack in serve_stack(endpoints, FAKE_CREDENTIALS, INPUT_BUCKET, tls):
        # By the address the certificate names: accepted.
        by_address = _env(stack, AWS_CA_BUNDLE=str(tls.ca_bundle))
        done, _ = _submit(stack, tmp_path / "by-address", by_address)
        assert done.returncode == 0, done.stderr
        # The same server by a name the certificate does not have: refused.
        by_name = _env(
            stack,
            AWS_CA_BUNDLE=str(tls.ca_bundle),
            AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=stack.sagemaker_url.replace(
                "127.0.0.1", "localhost"
            ),
        )
        done, _ = _submit(stack, tmp_path / "by-name", by_name)
        assert done.returncode == 4, done.stderr
        assert "certificate" in done.stderr and "Traceback" not in done.stderr


def test_both_transports_send_the_host_name_as_sni(tmp_path: Path) -> None:
    from bulkinvoke.calls.aws import AwsSettings, Transport, make_clients

    tls = write_tls_files(tmp_path / "tls", names=("localhost",))
    seen: list[str | None] = []
    context = tls.server_context()
    context.sni_callback = lambda sock, name, ctx: seen.append(name)  # type: ignore[assignment,misc]
    listener = context.wrap_socket(socket.create_server(("127.0.0.1", 0)), server_side=True)
    port = listener.getsockname()[1]

    def answer_once() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            body = b'{"InferenceId":"x"}'
            connection.sendall(
                b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )

    for transport in (Transport.DIRECT, Transport.BOTOCORE):
        server = threading.Thread(target=answer_once)
        server.start()
        settings = AwsSettings(region="us-east-1", endpoint_url=f"https://localhost:{port}",
                               ca_bundle=str(tls.ca_bundle), transport=transport,
                               static_credentials=("k", "s"))  # fmt: skip
        make_clients(settings).sagemaker_runtime.invoke_endpoint_async(
            EndpointName="demo", InputLocation="s3://b/k"
        )
        server.join(10)
    listener.close()
    assert seen == ["localhost", "localhost"]


class _ConnectProxy:
    """A minimal HTTP CONNECT proxy: it tunnels bytes and counts the tunnels it opened."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self._server = ConnectionServer(self._tunnel)
        self.url = self._server.url

    def _tunnel(self, client: socket.socket) -> None:
        read = read_head(client)
        if read is None:
            client.close()
            return
        head, _ = read
        method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if method != b"CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        host, _, port = target.decode().rpartition(":")
        self.tunnels.append(target.decode())
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        sockets = [client, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 30)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._server.close()


def test_https_proxy_through_a_connect_proxy(tls_stack: LocalStack, tmp_path: Path) -> None:
    assert tls_stack.tls is not None
    proxy = _ConnectProxy()
    try:
        env = _env(tls_stack, AWS_CA_BUNDLE=str(tls_stack.tls.ca_bundle), HTTPS_PROXY=proxy.url)
        done, _ = _submit(tls_stack, tmp_path, env)
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr
    # The README's promise: behind a proxy, botocore's HTTP stack sends, and the run says so.
    assert "calls go through botocore's HTTP stack" in done.stderr
    port = tls_stack.sagemaker_url.rsplit(":", 1)[1]
    assert f"127.0.0.1:{port}" in proxy.tunnels
