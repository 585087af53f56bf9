"""Clients this project did not write, against the emulator: where they disagree with it, the
emulator is wrong.

* The AWS CLI (PyPI's ``awscli``): ``sagemaker-runtime invoke-endpoint-async`` with every option
  of its documentation, over HTTPS with ``--ca-bundle``, then ``aws s3 cp`` of the output; an
  unsigned call (``--no-sign-request``) refused as AWS refuses it.
* The SageMaker Python SDK (``sagemaker``): ``AsyncPredictor.predict_async`` and
  ``AsyncInferenceResponse.get_result``. Skipped, with the reason printed, where the package
  cannot be installed (``.ci/run`` tries).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkinvoke.emulator import EndpointSpec, LocalStack
from bulkinvoke.emulator.tls import write_tls_files
from tests.loopback import s3_client, serve_stack

from .conftest import FAKE_CREDENTIALS, INPUT_BUCKET, OUTPUT_BUCKET

AWS_CLI = str(Path(sys.executable).parent / "aws")
INPUT = b'{"instances": [1, 2, 3]}'


@pytest.fixture(scope="module")
def https_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    tls = write_tls_files(tmp_path_factory.mktemp("tls"))
    endpoints = [EndpointSpec("clients", f"s3://{OUTPUT_BUCKET}/cli", f"s3://{OUTPUT_BUCKET}/err")]
    for stack in serve_stack(endpoints, FAKE_CREDENTIALS, INPUT_BUCKET, tls):
        s3_client(stack).put_object(Bucket=INPUT_BUCKET, Key="clients/input.json", Body=INPUT)
        yield stack


def _aws(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    assert stack.tls is not None
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(FAKE_CREDENTIALS, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    env.pop("AWS_CA_BUNDLE", None)
    command = [AWS_CLI, *args, "--region", "us-east-1", "--ca-bundle", str(stack.tls.ca_bundle)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_aws_sagemaker_describe_endpoint_and_its_config(https_stack: LocalStack) -> None:
    described = _aws(
        https_stack,
        "sagemaker", "describe-endpoint",
        "--endpoint-url", https_stack.sagemaker_url,
        "--endpoint-name", "clients",
    )  # fmt: skip
    assert described.returncode == 0, described.stderr
    endpoint = json.loads(described.stdout)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["AsyncInferenceConfig"]["OutputConfig"] == {
        "S3OutputPath": f"s3://{OUTPUT_BUCKET}/cli",
        "S3FailurePath": f"s3://{OUTPUT_BUCKET}/err",
    }
    configured = _aws(
        https_stack,
        "sagemaker", "describe-endpoint-config",
        "--endpoint-url", https_stack.sagemaker_url,
        "--endpoint-config-name", endpoint["EndpointConfigName"],
    )  # fmt: skip
    assert configured.returncode == 0, configured.stderr
    assert json.loads(configured.stdout)["ProductionVariants"][0]["InitialInstanceCount"] == 1


def test_the_aws_cli_with_every_option_then_aws_s3_cp_of_the_output(
    https_stack: LocalStack, tmp_path: Path
) -> None:
    sent = _aws(
        https_stack,
        "sagemaker-runtime", "invoke-endpoint-async",
        "--endpoint-url", https_stack.sagemaker_url,
        "--endpoint-name", "clients",
        "--input-location", f"s3://{INPUT_BUCKET}/clients/input.json",
        "--content-type", "application/json",
        "--accept", "application/json",
        "--custom-attributes", "trace=cli-1",
        "--inference-id", "cli-every-option",
        "--s3-output-path-extension", "run-1/part",
        "--filename", "cli-every-option.out",
        "--request-ttl-seconds", "600",
        "--invocation-timeout-seconds", "120",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    answer = json.loads(sent.stdout)
    assert answer == {
        "InferenceId": "cli-every-option",
        "OutputLocation": f"s3://{OUTPUT_BUCKET}/cli/run-1/part/cli-every-option.out",
        "FailureLocation": f"s3://{OUTPUT_BUCKET}/err/run-1/part/cli-every-option-error.out",
    }
    assert https_stack.wait_idle(20)
    target = tmp_path / "output.json"
    copied = _aws(
        https_stack, "s3", "cp", answer["OutputLocation"], str(target),
        "--endpoint-url", https_stack.s3_url,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    output = json.loads(target.read_bytes())
    # The emulator's default model: a summary of what it read and was asked for.
    assert output["size"] == len(INPUT)
    assert output["content_type"] == "application/json"


def test_the_aws_cli_with_an_inline_body(https_stack: LocalStack) -> None:
    sent = _aws(
        https_stack,
        "sagemaker-runtime", "invoke-endpoint-async",
        "--endpoint-url", https_stack.sagemaker_url,
        "--endpoint-name", "clients",
        "--body", "aGVsbG8=",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["OutputLocation"].startswith(f"s3://{OUTPUT_BUCKET}/cli/")


def test_an_unsigned_call_is_refused_as_aws_refuses_it(https_stack: LocalStack) -> None:
    sent = _aws(
        https_stack,
        "sagemaker-runtime", "invoke-endpoint-async",
        "--endpoint-url", https_stack.sagemaker_url,
        "--endpoint-name", "clients",
        "--input-location", f"s3://{INPUT_BUCKET}/clients/input.json",
        "--no-sign-request",
    )  # fmt: skip
    assert sent.returncode != 0
    assert "MissingAuthenticationToken" in sent.stderr


def test_the_sagemaker_sdk_async_predictor(https_stack: LocalStack) -> None:
    try:
        from sagemaker.async_inference import WaiterConfig
        from sagemaker.predictor import Predictor
        from sagemaker.predictor_async import AsyncPredictor
        from sagemaker.session import Session
    except ImportError as error:
        pytest.skip(f"the SageMaker Python SDK (v2) is not installed here ({error})")
    import boto3

    assert https_stack.tls is not None
    boto_session = boto3.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    verify = str(https_stack.tls.ca_bundle)
    runtime = boto_session.client(
        "sagemaker-runtime", endpoint_url=https_stack.sagemaker_url, verify=verify
    )
    session = Session(
        boto_session=boto_session, sagemaker_runtime_client=runtime, default_bucket=INPUT_BUCKET
    )
    predictor = AsyncPredictor(Predictor("clients", sagemaker_session=session))
    predictor.s3_client = boto_session.client("s3", endpoint_url=https_stack.s3_url, verify=verify)
    response = predictor.predict_async(input_path=f"s3://{INPUT_BUCKET}/clients/input.json")
    assert response.output_path.startswith(f"s3://{OUTPUT_BUCKET}/cli/")
    result = response.get_result(WaiterConfig(max_attempts=20, delay=0.5))
    assert json.loads(result)["size"] == len(INPUT)
