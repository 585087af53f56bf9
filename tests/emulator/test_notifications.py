"""Success and error notifications reach an SQS queue subscribed to the endpoint's topics."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from bulkinvoke.emulator import LocalStack
from tests.emulator.conftest import ERROR_TOPIC, INPUT_BUCKET, REGION, SUCCESS_TOPIC

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def sqs(stack: LocalStack) -> BaseClient:
    return boto3.client("sqs", endpoint_url=stack.sqs_url, region_name=REGION)


def _subscribed_queue(stack: LocalStack, sqs: BaseClient, name: str, topic: str) -> str:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns = boto3.client("sns", endpoint_url=stack.sns_url, region_name=REGION)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return url


def _message_about(sqs: BaseClient, queue_url: str, inference_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        received = sqs.receive_message(
            QueueUrl=queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=10
        )
        for raw in received.get("Messages", []):
            envelope = json.loads(raw["Body"])
            message = json.loads(envelope["Message"])
            if message["inferenceId"] == inference_id:
                assert envelope["Type"] == "Notification"
                return message
    raise AssertionError(f"no notification about {inference_id}")


def test_success_notification(stack: LocalStack, runtime: BaseClient, sqs: BaseClient) -> None:
    queue = _subscribed_queue(stack, sqs, "emu-success-q", SUCCESS_TOPIC)
    response = runtime.invoke_endpoint_async(
        EndpointName="main",
        InputLocation=f"s3://{INPUT_BUCKET}/hello.txt",
        InferenceId="notify-ok",
        ContentType="text/plain",
    )
    message = _message_about(sqs, queue, "notify-ok")
    assert TIMESTAMP.fullmatch(message.pop("eventTime"))
    assert TIMESTAMP.fullmatch(message.pop("receivedTime"))
    assert message == {
        "awsRegion": REGION,
        "invocationStatus": "Completed",
        "requestParameters": {
            "contentType": "text/plain",
            "endpointName": "main",
            "inputLocation": f"s3://{INPUT_BUCKET}/hello.txt",
        },
        "responseParameters": {
            "contentType": "application/json",
            "outputLocation": response["OutputLocation"],
        },
        "inferenceId": "notify-ok",
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }


def test_error_notification(stack: LocalStack, runtime: BaseClient, sqs: BaseClient) -> None:
    queue = _subscribed_queue(stack, sqs, "emu-error-q", ERROR_TOPIC)
    before = stack.stats()["notifications"]
    response = runtime.invoke_endpoint_async(
        EndpointName="main",
        InputLocation=f"s3://{INPUT_BUCKET}/absent.txt",
        InferenceId="notify-bad",
    )
    message = _message_about(sqs, queue, "notify-bad")
    assert message["invocationStatus"] == "Failed"
    assert message["failureReason"].startswith("ClientError: could not read the input")
    assert message["requestParameters"] == {
        "endpointName": "main",
        "inputLocation": f"s3://{INPUT_BUCKET}/absent.txt",
    }
    assert message["responseParameters"] == {
        "contentType": "text/plain",
        "failureLocation": response["FailureLocation"],
    }
    assert stack.wait_idle(10)  # the counter moves once publish() returns
    assert stack.stats()["notifications"] > before
