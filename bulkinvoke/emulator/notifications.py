"""SNS notifications of inference results, in SageMaker Asynchronous Inference's format.

The message (the SNS ``Message`` string, JSON) has the fields the service documents::

    {"awsRegion": "us-east-1",
     "eventTime": "2024-05-01T10:00:01.250Z",        # when the result was written
     "receivedTime": "2024-05-01T10:00:00.125Z",     # when the call was accepted
     "invocationStatus": "Completed" | "Failed",
     "failureReason": "ModelError: ...",             # Failed only
     "requestParameters": {"contentType": ..., "endpointName": ..., "inputLocation": ...},
     "responseParameters": {"contentType": ..., "outputLocation" | "failureLocation": ...},
     "inferenceId": "...",
     "eventVersion": "1.0", "eventSource": "aws:sagemaker", "eventName": "InferenceResult"}

``contentType`` and ``inputLocation`` are left out of ``requestParameters`` when the call had
none (an inline Body has no input location); a failure without S3FailurePath has no
``responseParameters``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from bulkinvoke.emulator.clients import Clients
from bulkinvoke.emulator.config import TOPIC_ARN_PATTERN
from bulkinvoke.emulator.jobs import Job
from bulkinvoke.emulator.stats import Stats

log = logging.getLogger(__name__)


def _timestamp(epoch_seconds: float) -> str:
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def inference_result(
    job: Job,
    *,
    region: str,
    event_time: float,
    content_type: str | None = None,
    failure_reason: str | None = None,
) -> dict[str, Any]:
    """The message for ``job``: a success unless ``failure_reason`` is given."""
    request = job.request
    request_parameters = {
        "contentType": request.content_type,
        "endpointName": request.endpoint_name,
        "inputLocation": request.input_location,
    }
    message: dict[str, Any] = {
        "awsRegion": region,
        "eventTime": _timestamp(event_time),
        "receivedTime": _timestamp(job.received_at),
        "invocationStatus": "Completed" if failure_reason is None else "Failed",
    }
    if failure_reason is None:
        response = {"contentType": content_type, "outputLocation": job.output_location}
    else:
        message["failureReason"] = failure_reason
        response = (
            {"contentType": "text/plain", "failureLocation": job.failure_location}
            if job.failure_location is not None
            else {}
        )
    message["requestParameters"] = {k: v for k, v in request_parameters.items() if v is not None}
    if response:
        message["responseParameters"] = response
    message.update(
        inferenceId=job.inference_id,
        eventVersion="1.0",
        eventSource="aws:sagemaker",
        eventName="InferenceResult",
    )
    return message


class Notifier:
    """Publishes to a topic ARN on the configured SNS server; failures are counted, not raised."""

    def __init__(self, clients: Clients, stats: Stats) -> None:
        self._clients = clients
        self._stats = stats

    def publish(self, topic_arn: str, message: dict[str, Any]) -> None:
        match = TOPIC_ARN_PATTERN.fullmatch(topic_arn)
        region = match.group(1) if match and match.group(1) else self._clients.region
        try:
            self._clients.sns(region).publish(TopicArn=topic_arn, Message=json.dumps(message))
        except Exception:
            # A lost notification must not fail the inference, as with the real service.
            log.warning("could not publish to %s", topic_arn, exc_info=True)
            self._stats.count("notification_errors")
        else:
            self._stats.count("notifications")
