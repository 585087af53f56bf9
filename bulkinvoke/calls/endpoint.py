"""What the endpoint says about itself, read before the first call: ``DescribeEndpoint`` (status,
instances, AsyncInferenceConfig) and ``DescribeEndpointConfig`` (instance type), with the run's
credentials through the SageMaker API (``AWS_ENDPOINT_URL_SAGEMAKER`` points it elsewhere).

An endpoint that does not exist, is not ``InService`` or has no AsyncInferenceConfig is refused
before anything is sent (:class:`EndpointRefused`, exit 4). Credentials that may invoke but not
describe (a common least-privilege role) or an API out of reach leave the run unchecked
(:class:`EndpointNotDescribed`, shown as a warning): the calls themselves still say whether the
endpoint takes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bulkinvoke.aws_protocols import SageMakerClient
from bulkinvoke.errors import StoppedError, error_code

IN_SERVICE = "InService"
# Statuses in which an endpoint still takes calls: an update (autoscaling's too, as when it
# scales up from zero), a system update or a rollback keeps the endpoint serving.
SERVING_STATUSES = frozenset(
    {IN_SERVICE, "Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed"}
)


class EndpointRefused(StoppedError):
    """The endpoint cannot take the run's calls (missing, not in service, not asynchronous)."""


class EndpointNotDescribed(Exception):
    """The endpoint could not be described; the run goes on unchecked."""


@dataclass(frozen=True)
class EndpointDescription:
    name: str
    status: str
    asynchronous: bool
    output_path: str | None = None
    failure_path: str | None = None
    success_topic: str | None = None
    error_topic: str | None = None
    # Current instances over every production variant; None for a serverless endpoint.
    instances: int | None = None
    instance_type: str | None = None
    # AsyncInferenceConfig.ClientConfig.MaxConcurrentInvocationsPerInstance (None: the
    # service's own choice, which it does not report).
    max_concurrent_per_instance: int | None = None
    failure_reason: str | None = None
    # The production variants' names (ModelLatency is published per variant).
    variants: tuple[str, ...] = ()

    @property
    def concurrent_invocations(self) -> int | None:
        """Invocations the endpoint processes at once, where it says."""
        if self.instances is None or self.max_concurrent_per_instance is None:
            return None
        return self.instances * self.max_concurrent_per_instance

    def refusal(self) -> str | None:
        """Why a run must not send to this endpoint, or None."""
        if self.status not in SERVING_STATUSES:
            reason = f" ({self.failure_reason})" if self.failure_reason else ""
            return (
                f"endpoint {self.name} is {self.status}{reason}, not {IN_SERVICE}: "
                "nothing was sent; run again once it is in service"
            )
        if not self.asynchronous:
            return (
                f"endpoint {self.name} has no AsyncInferenceConfig: it is a real-time endpoint, "
                "and InvokeEndpointAsync needs an asynchronous one; nothing was sent"
            )
        return None

    def to_config(self) -> dict[str, Any]:
        return asdict(self)


def describe_endpoint(client: SageMakerClient, name: str) -> EndpointDescription:
    """The endpoint ``name`` as the SageMaker API describes it. Raises EndpointRefused if there
    is no such endpoint, EndpointNotDescribed if it cannot be asked."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        endpoint = client.describe_endpoint(EndpointName=name)
    except ClientError as error:
        code = error_code(error)
        if code == "ValidationException" and "Could not find" in str(error):
            raise EndpointRefused(
                f"endpoint {name} does not exist (DescribeEndpoint: {code}); nothing was sent"
            ) from None
        raise EndpointNotDescribed(f"DescribeEndpoint {name}: {code or error}") from None
    except BotoCoreError as error:
        raise EndpointNotDescribed(f"DescribeEndpoint {name}: {error}") from None
    variants = endpoint.get("ProductionVariants") or []
    counts = [v.get("CurrentInstanceCount") for v in variants]
    async_config = endpoint.get("AsyncInferenceConfig")
    output = (async_config or {}).get("OutputConfig") or {}
    topics = output.get("NotificationConfig") or {}
    client_config = (async_config or {}).get("ClientConfig") or {}
    return EndpointDescription(
        name=name,
        status=endpoint["EndpointStatus"],
        asynchronous=async_config is not None,
        output_path=output.get("S3OutputPath"),
        failure_path=output.get("S3FailurePath"),
        success_topic=topics.get("SuccessTopic"),
        error_topic=topics.get("ErrorTopic"),
        instances=sum(counts) if counts and None not in counts else None,
        instance_type=_instance_type(client, endpoint.get("EndpointConfigName")),
        max_concurrent_per_instance=client_config.get("MaxConcurrentInvocationsPerInstance"),
        failure_reason=endpoint.get("FailureReason"),
        variants=tuple(v["VariantName"] for v in variants if v.get("VariantName")),
    )


def _instance_type(client: SageMakerClient, config_name: str | None) -> str | None:
    """The instance type of the endpoint's config, if it has one and it can be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not config_name:
        return None
    try:
        config = client.describe_endpoint_config(EndpointConfigName=config_name)
    except (BotoCoreError, ClientError):
        return None  # only shown, never acted on
    types = {v.get("InstanceType") for v in config.get("ProductionVariants") or []}
    types.discard(None)
    return ", ".join(sorted(types)) or None
