"""The SageMaker control-plane calls a bulk client makes before it sends: DescribeEndpoint and
DescribeEndpointConfig, answered from the declared endpoints (``EndpointSpec``).

They use the ``sagemaker`` service's awsJson1.1 protocol, as botocore's model says: ``POST /``
with ``X-Amz-Target: SageMaker.<Operation>``, a JSON body, timestamps as epoch seconds, and
errors as ``{"__type": code, "message": ...}``. Requests are signed as runtime calls are
(signing name ``sagemaker``) and checked the same way. Any other operation is refused, as the
service refuses one it does not know.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from bulkinvoke.emulator.config import EmulatorConfig, EndpointSpec
from bulkinvoke.emulator.wire import ServiceError

TARGET_PREFIX = "SageMaker."
CONTENT_TYPE = "application/x-amz-json-1.1"
VARIANT = "AllTraffic"
# The service's time is not the emulator's concern: every endpoint was made when it started.
_CREATED = time.time()

Headers = list[tuple[str, str]]


def is_control_plane(method: str, path: str, headers: Mapping[str, str]) -> bool:
    return method == "POST" and path == "/" and "x-amz-target" in headers


def handle_control(
    endpoints: Mapping[str, EndpointSpec],
    config: EmulatorConfig,
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[int, Headers, bytes]:
    """The answer to one control-plane request whose signature has been checked."""
    target = headers.get("x-amz-target", "")
    answer = (
        _OPERATIONS.get(target.removeprefix(TARGET_PREFIX))
        if target.startswith(TARGET_PREFIX)
        else None
    )
    try:
        if answer is None:
            raise ServiceError(400, "UnknownOperationException", f"Unknown operation {target}")
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise ServiceError(400, "SerializationException", "Malformed JSON body") from None
        payload = answer(endpoints, config, request)
    except ServiceError as error:
        return control_error(error)
    return 200, _headers(), json.dumps(payload).encode()


def _describe_endpoint(
    endpoints: Mapping[str, EndpointSpec], config: EmulatorConfig, request: dict[str, Any]
) -> dict[str, Any]:
    spec = _endpoint(endpoints, config, request.get("EndpointName"), "endpoint")
    described: dict[str, Any] = {
        "EndpointName": spec.name,
        "EndpointArn": _arn(config, "endpoint", spec.name),
        "EndpointConfigName": spec.name,
        "ProductionVariants": [
            {
                "VariantName": VARIANT,
                "CurrentWeight": 1.0,
                "DesiredWeight": 1.0,
                "CurrentInstanceCount": spec.instances,
                "DesiredInstanceCount": spec.instances,
            }
        ],
        "EndpointStatus": spec.status,
        "CreationTime": _CREATED,
        "LastModifiedTime": _CREATED,
    }
    if spec.status == "Failed":
        described["FailureReason"] = "The emulated endpoint was declared Failed."
    if spec.asynchronous:
        described["AsyncInferenceConfig"] = _async_config(spec)
    return described


def _describe_endpoint_config(
    endpoints: Mapping[str, EndpointSpec], config: EmulatorConfig, request: dict[str, Any]
) -> dict[str, Any]:
    # Each endpoint is declared with a config of its own name.
    spec = _endpoint(endpoints, config, request.get("EndpointConfigName"), "endpoint-config")
    described: dict[str, Any] = {
        "EndpointConfigName": spec.name,
        "EndpointConfigArn": _arn(config, "endpoint-config", spec.name),
        "ProductionVariants": [
            {
                "VariantName": VARIANT,
                "ModelName": spec.name,
                "InitialInstanceCount": spec.instances,
                "InstanceType": spec.instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
        "CreationTime": _CREATED,
    }
    if spec.asynchronous:
        described["AsyncInferenceConfig"] = _async_config(spec)
    return described


_OPERATIONS: dict[
    str,
    Callable[[Mapping[str, EndpointSpec], EmulatorConfig, dict[str, Any]], dict[str, Any]],
] = {
    "DescribeEndpoint": _describe_endpoint,
    "DescribeEndpointConfig": _describe_endpoint_config,
}


def _endpoint(
    endpoints: Mapping[str, EndpointSpec], config: EmulatorConfig, name: Any, kind: str
) -> EndpointSpec:
    if not isinstance(name, str) or not name:
        member = "EndpointName" if kind == "endpoint" else "EndpointConfigName"
        raise ServiceError(
            400, "ValidationException", f"1 validation error detected: {member} is required"
        )
    spec = endpoints.get(name)
    if spec is None:
        raise ServiceError(
            400, "ValidationException", f'Could not find {kind} "{_arn(config, kind, name)}".'
        )
    return spec


def _async_config(spec: EndpointSpec) -> dict[str, Any]:
    output: dict[str, Any] = {"S3OutputPath": spec.output_path}
    if spec.failure_path is not None:
        output["S3FailurePath"] = spec.failure_path
    topics = {"SuccessTopic": spec.success_topic, "ErrorTopic": spec.error_topic}
    if any(topics.values()):
        output["NotificationConfig"] = {k: v for k, v in topics.items() if v is not None}
    client: dict[str, Any] = {}
    if spec.max_concurrent_per_instance is not None:
        client["MaxConcurrentInvocationsPerInstance"] = spec.max_concurrent_per_instance
    return {"ClientConfig": client, "OutputConfig": output}


def _arn(config: EmulatorConfig, kind: str, name: str) -> str:
    # ARNs spell resource names in lower case.
    return f"arn:aws:sagemaker:{config.region}:{config.account}:{kind}/{name.lower()}"


def _headers() -> Headers:
    return [("x-amzn-RequestId", str(uuid.uuid4())), ("Content-Type", CONTENT_TYPE)]


def control_error(error: ServiceError) -> tuple[int, Headers, bytes]:
    body = json.dumps({"__type": error.code, "message": error.message}).encode()
    return error.status, _headers(), body
