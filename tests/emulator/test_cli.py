"""The ``bulkinvoke emulator`` command: options, output, serving, a clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import typer
from typer.testing import CliRunner

from bulkinvoke.cli.emulator import emulator_command, parse_endpoint
from bulkinvoke.emulator import EndpointSpec

RUN_COMMAND = (
    "import typer; from bulkinvoke.cli.emulator import emulator_command; "
    "typer.run(emulator_command)"
)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(emulator_command)
    return app


def test_every_option_has_help() -> None:
    command = typer.main.get_command(_app())
    options = [p for p in command.params if isinstance(p, typer.core.TyperOption)]
    assert options
    assert all(option.help for option in options), [o.name for o in options if not o.help]


def test_parse_endpoint() -> None:
    assert parse_endpoint("ep=s3://b-out/x") == EndpointSpec("ep", "s3://b-out/x")
    text = (
        "ep=s3://b-out/x,failure=s3://b-fail/y,"
        "success_topic=arn:aws:sns:us-east-1:123456789012:ok,handler=pkg.mod:fn"
    )
    assert parse_endpoint(text, "other:default") == EndpointSpec(
        "ep",
        "s3://b-out/x",
        "s3://b-fail/y",
        success_topic="arn:aws:sns:us-east-1:123456789012:ok",
        handler="pkg.mod:fn",
    )
    assert parse_endpoint("ep=s3://b-out/x", "other:default").handler == "other:default"


@pytest.mark.parametrize(
    "text", ["no-equals", "ep=", "ep=s3://b-out/x,colour=red", "bad_name=s3://b-out/x"]
)
def test_parse_endpoint_refuses(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_endpoint(text)


@pytest.mark.parametrize(
    "args",
    [["--latency", "soon"], ["--endpoint", "x"], ["--missing-input", "ignore"], ["--workers", "0"]],
)
def test_bad_options_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 2


def _start(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``bulkinvoke emulator ARGS`` in a child process, and the variables it printed for clients
    (the last, AWS_DEFAULT_REGION, once it serves; fewer if it did not start in 30 s)."""
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert process.stdout is not None
    exports: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while "AWS_DEFAULT_REGION" not in exports and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = value
    return process, exports


def test_serves_until_interrupted(fake_aws_environment: None) -> None:
    process, exports = _start("--workers", "2", "--latency", "uniform:0-0.01")
    try:
        assert exports["AWS_ACCESS_KEY_ID"] == "local"
        # The credentials it printed: it checks every call's signature with them.
        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=exports["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"],
            region_name=exports["AWS_DEFAULT_REGION"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=None,
        )
        response = runtime.invoke_endpoint_async(EndpointName="demo", Body=b"hi")
        assert response["OutputLocation"].startswith("s3://bulkinvoke-local/outputs/")
        assert response["FailureLocation"].startswith("s3://bulkinvoke-local/failures/")
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped" in stdout


def test_tls_serves_https_with_the_ca_it_prints(fake_aws_environment: None, tmp_path: Path) -> None:
    process, exports = _start("--tls", "--tls-dir", str(tmp_path / "tls"))
    try:
        assert exports["AWS_CA_BUNDLE"] == str(tmp_path / "tls" / "ca.pem")
        assert exports["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"].startswith("https://")
        assert exports["AWS_ENDPOINT_URL_S3"].startswith("https://")
        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=exports["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"],
            region_name=exports["AWS_DEFAULT_REGION"],
            aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=None,
            verify=exports["AWS_CA_BUNDLE"],
        )
        response = runtime.invoke_endpoint_async(EndpointName="demo", Body=b"hi")
        assert response["OutputLocation"].startswith("s3://bulkinvoke-local/outputs/")
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
