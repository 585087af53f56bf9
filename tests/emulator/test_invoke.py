"""Accepted calls: the wire response, and the output objects the workers write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from botocore.client import BaseClient

from bulkinvoke.emulator import LocalStack
from tests.emulator.conftest import FAKE_ENV, INPUT_BUCKET, INPUTS, object_exists, read_object

AWS_CLI = str(Path(sys.executable).with_name("aws"))


def test_accepted_call_with_filename_and_extension(
    stack: LocalStack, runtime: BaseClient, s3: BaseClient
) -> None:
    response = runtime.invoke_endpoint_async(
        EndpointName="main",
        InputLocation=f"s3://{INPUT_BUCKET}/hello.txt",
        InferenceId="call-1",
        ContentType="text/plain",
        CustomAttributes="trace=1",
        Filename="call-1.json",
        S3OutputPathExtension="run-1/part",
        RequestTTLSeconds=600,
        InvocationTimeoutSeconds=60,
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert response["InferenceId"] == "call-1"
    assert response["OutputLocation"] == "s3://emu-out/results/run-1/part/call-1.json"
    assert response["FailureLocation"] == "s3://emu-fail/errors/run-1/part/call-1-error.out"
    assert stack.wait_idle(10)
    output = read_object(s3, response["OutputLocation"])
    summary = json.loads(output["body"])
    assert output["content_type"] == "application/json"
    assert summary["inference_id"] == "call-1"
    assert summary["input_location"] == f"s3://{INPUT_BUCKET}/hello.txt"
    assert summary["content_type"] == "text/plain"
    assert summary["custom_attributes"] == "trace=1"
    assert summary["size"] == len(INPUTS["hello.txt"])
    assert summary["text"] == "hello world"
    assert not object_exists(s3, response["FailureLocation"])


def test_generated_id_and_output_name(
    stack: LocalStack, runtime: BaseClient, s3: BaseClient
) -> None:
    response = runtime.invoke_endpoint_async(
        EndpointName="main", InputLocation=f"s3://{INPUT_BUCKET}/data.json"
    )
    uuid.UUID(response["InferenceId"])
    name = response["OutputLocation"].removeprefix("s3://emu-out/results/")
    assert name.endswith(".out") and "/" not in name
    uuid.UUID(name.removesuffix(".out"))
    stem = name.removesuffix(".out")
    assert response["FailureLocation"] == f"s3://emu-fail/errors/{stem}-error.out"
    assert stack.wait_idle(10)
    assert json.loads(read_object(s3, response["OutputLocation"])["body"])["size"] == 8


def test_no_failure_location_without_failure_path(runtime: BaseClient) -> None:
    response = runtime.invoke_endpoint_async(
        EndpointName="nofail", InputLocation=f"s3://{INPUT_BUCKET}/hello.txt"
    )
    assert "FailureLocation" not in response
    assert "x-amzn-sagemaker-failurelocation" not in response["ResponseMetadata"]["HTTPHeaders"]


def test_inline_body(stack: LocalStack, runtime: BaseClient, s3: BaseClient) -> None:
    response = runtime.invoke_endpoint_async(
        EndpointName="picky", Body=b"inline payload", ContentType="text/plain", Filename="in.txt"
    )
    assert response["OutputLocation"] == "s3://emu-out/picky/in.txt"
    assert stack.wait_idle(10)
    assert read_object(s3, response["OutputLocation"]) == {
        "body": b"INLINE PAYLOAD",
        "content_type": "text/plain",
    }


def test_handler_without_content_type_uses_accept(
    stack: LocalStack, runtime: BaseClient, s3: BaseClient
) -> None:
    response = runtime.invoke_endpoint_async(
        EndpointName="plain", InputLocation=f"s3://{INPUT_BUCKET}/data.json", Accept="text/csv"
    )
    assert stack.wait_idle(10)
    assert read_object(s3, response["OutputLocation"]) == {
        "body": INPUTS["data.json"],
        "content_type": "text/csv",
    }


def test_https_input_location(stack: LocalStack, runtime: BaseClient, s3: BaseClient) -> None:
    response = runtime.invoke_endpoint_async(
        EndpointName="plain",
        InputLocation=f"https://{INPUT_BUCKET}.s3.us-east-1.amazonaws.com/hello.txt",
    )
    assert stack.wait_idle(10)
    assert read_object(s3, response["OutputLocation"])["body"] == INPUTS["hello.txt"]


def _aws(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **FAKE_ENV, "AWS_CONFIG_FILE": "/nonexistent"}
    command = [AWS_CLI, "sagemaker-runtime", "invoke-endpoint-async"]
    command += ["--endpoint-url", stack.sagemaker_url, "--region", "us-east-1", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_aws_cli_accepted_call(stack: LocalStack, s3: BaseClient) -> None:
    result = _aws(
        stack,
        "--endpoint-name", "main",
        "--input-location", f"s3://{INPUT_BUCKET}/hello.txt",
        "--inference-id", "cli-1",
        "--filename", "cli-1.out",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response == {
        "InferenceId": "cli-1",
        "OutputLocation": "s3://emu-out/results/cli-1.out",
        "FailureLocation": "s3://emu-fail/errors/cli-1-error.out",
    }
    assert stack.wait_idle(10)
    assert json.loads(read_object(s3, response["OutputLocation"])["body"])["size"] == 11


def test_aws_cli_validation_error(stack: LocalStack) -> None:
    # botocore checks only minimums client-side, so an over-long TTL reaches the server.
    result = _aws(
        stack,
        "--endpoint-name", "main",
        "--input-location", f"s3://{INPUT_BUCKET}/hello.txt",
        "--request-ttl-seconds", "21601",
    )  # fmt: skip
    assert result.returncode != 0
    assert "An error occurred (ValidationError) when calling the InvokeEndpointAsync" in (
        result.stderr
    )
    assert "requestTTLSeconds" in result.stderr
