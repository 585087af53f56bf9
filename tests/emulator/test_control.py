"""The control plane the emulator serves beside the runtime: DescribeEndpoint and
DescribeEndpointConfig, through botocore's own ``sagemaker`` client (awsJson1.1, signed)."""

from __future__ import annotations

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from bulkinvoke.emulator import EndpointSpec, LocalStack

from .conftest import ERROR_TOPIC, REGION, SUCCESS_TOPIC


@pytest.fixture(scope="module")
def sagemaker(stack: LocalStack) -> BaseClient:
    return boto3.client("sagemaker", endpoint_url=stack.sagemaker_url, region_name=REGION)


def test_describe_endpoint_reports_its_async_config(sagemaker: BaseClient) -> None:
    described = sagemaker.describe_endpoint(EndpointName="main")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "main"
    assert described["EndpointArn"].endswith(":endpoint/main")
    output = described["AsyncInferenceConfig"]["OutputConfig"]
    assert output["S3OutputPath"] == "s3://emu-out/results"
    assert output["S3FailurePath"] == "s3://emu-fail/errors"
    assert output["NotificationConfig"] == {
        "SuccessTopic": SUCCESS_TOPIC,
        "ErrorTopic": ERROR_TOPIC,
    }
    (variant,) = described["ProductionVariants"]
    assert variant["CurrentInstanceCount"] == 1
    # botocore parsed the epoch seconds into a datetime, as it does the service's.
    assert described["CreationTime"].year >= 2026


def test_describe_endpoint_config_reports_the_instances(sagemaker: BaseClient) -> None:
    described = sagemaker.describe_endpoint_config(EndpointConfigName="main")
    (variant,) = described["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.xlarge"
    assert variant["InitialInstanceCount"] == 1
    assert described["AsyncInferenceConfig"]["ClientConfig"] == {}


def test_a_declared_description_is_reported(stack: LocalStack, sagemaker: BaseClient) -> None:
    stack.add_endpoint(
        EndpointSpec(
            "scaled-to-zero",
            "s3://emu-out/zero",
            status="Updating",
            instances=0,
            instance_type="ml.g5.xlarge",
            max_concurrent_per_instance=4,
        )
    )
    stack.add_endpoint(EndpointSpec("realtime", "s3://emu-out/realtime", asynchronous=False))
    described = sagemaker.describe_endpoint(EndpointName="scaled-to-zero")
    assert described["EndpointStatus"] == "Updating"
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 0
    config = sagemaker.describe_endpoint_config(EndpointConfigName="scaled-to-zero")
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.g5.xlarge"
    assert config["AsyncInferenceConfig"]["ClientConfig"] == {
        "MaxConcurrentInvocationsPerInstance": 4
    }
    assert "AsyncInferenceConfig" not in sagemaker.describe_endpoint(EndpointName="realtime")


def test_an_unknown_endpoint_is_a_validation_exception(sagemaker: BaseClient) -> None:
    with pytest.raises(ClientError) as raised:
        sagemaker.describe_endpoint(EndpointName="nowhere")
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"] == (
        'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/nowhere".'
    )
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_other_operations_and_unknown_keys_are_refused(stack: LocalStack) -> None:
    sagemaker = boto3.client("sagemaker", endpoint_url=stack.sagemaker_url, region_name=REGION)
    with pytest.raises(ClientError, match="UnknownOperationException"):
        sagemaker.list_endpoints()
    stranger = boto3.client(
        "sagemaker",
        endpoint_url=stack.sagemaker_url,
        region_name=REGION,
        aws_access_key_id="AKIDSTRANGER",
        aws_secret_access_key="secret",
    )
    with pytest.raises(ClientError) as raised:
        stranger.describe_endpoint(EndpointName="main")
    assert raised.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
