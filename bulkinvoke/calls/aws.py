"""boto3 sessions and clients, configured the way a bulk run needs them.

Standard AWS configuration applies unchanged: the default credential chain, ``--profile``,
``--region`` and the ``AWS_ENDPOINT_URL_*`` variables that botocore reads itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from bulkinvoke.errors import AwsConfigError
from bulkinvoke.version import __version__

if TYPE_CHECKING:
    from bulkinvoke.aws_protocols import (
        CloudWatchClient,
        RuntimeClient,
        S3Client,
        SageMakerClient,
        SqsClient,
    )

DEFAULT_CALL_TIMEOUT = 60.0
NO_VERIFY_WARNING = (
    "--no-verify-ssl: TLS certificates are not verified; anyone on the network path can read "
    "and change the calls"
)
# Appended to botocore's User-Agent: the service's logs can tell bulkinvoke's calls apart.
USER_AGENT_EXTRA = f"bulkinvoke/{__version__}"


class Transport(Enum):
    """How InvokeEndpointAsync calls are sent (see bulkinvoke.calls.transport)."""

    # Signed and parsed by botocore, sent on bulkinvoke's own keep-alive connections; botocore
    # sends instead wherever a proxy or a client certificate is configured.
    DIRECT = "direct"
    # Everything through the botocore client, at about twice the client CPU per call.
    BOTOCORE = "botocore"


@dataclass(frozen=True)
class AwsSettings:
    region: str | None = None
    profile: str | None = None
    # For sagemaker-runtime; S3 follows AWS_ENDPOINT_URL_S3 unless s3_endpoint_url is given.
    endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    # For the notification queue; AWS_ENDPOINT_URL_SQS works too.
    sqs_endpoint_url: str | None = None
    # For the SageMaker API (DescribeEndpoint); AWS_ENDPOINT_URL_SAGEMAKER works too.
    sagemaker_endpoint_url: str | None = None
    # For the endpoint's metrics (GetMetricData); AWS_ENDPOINT_URL_CLOUDWATCH works too.
    cloudwatch_endpoint_url: str | None = None
    expected_bucket_owner: str | None = None
    # Seconds to wait for each InvokeEndpointAsync answer (None: 60) before the call counts as
    # a timeout and is retried with the same inference ID.
    call_timeout: float | None = None
    transport: Transport | None = None  # None: Transport.DIRECT
    # The CA bundle to verify the endpoints' certificates with (None: botocore's choice:
    # AWS_CA_BUNDLE, the profile's ca_bundle, then its own bundle).
    ca_bundle: str | None = None
    # False: certificates are not verified (--no-verify-ssl). Never saved with the run: each
    # session must ask for it again.
    verify_ssl: bool | None = None
    # Only the embedded local emulator sets these (the credentials it hands out): a user's real
    # credentials must never be sent to it.
    static_credentials: tuple[str, str] | None = None

    def to_config(self) -> dict[str, Any]:
        """What run.json keeps: where to connect, never any credential."""
        return {
            "region": self.region,
            "profile": self.profile,
            "endpoint_url": self.endpoint_url,
            "s3_endpoint_url": self.s3_endpoint_url,
            "sqs_endpoint_url": self.sqs_endpoint_url,
            "sagemaker_endpoint_url": self.sagemaker_endpoint_url,
            "cloudwatch_endpoint_url": self.cloudwatch_endpoint_url,
            "expected_bucket_owner": self.expected_bucket_owner,
            "call_timeout": self.call_timeout,
            "transport": self.transport.value if self.transport else None,
            "ca_bundle": self.ca_bundle,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AwsSettings:
        values = {k: config.get(k) for k in cls().to_config()}
        if values["transport"] is not None:
            values["transport"] = Transport(values["transport"])
        return cls(**values)

    def verification(self) -> bool | str | None:
        """botocore's ``verify``: False, a CA bundle's path, or None for its default."""
        return False if self.verify_ssl is False else self.ca_bundle

    def merged_with(self, overrides: AwsSettings) -> AwsSettings:
        """These settings with every field ``overrides`` sets taken from it."""
        changes = {k: v for k, v in vars(overrides).items() if v is not None}
        return replace(self, **changes)


class LazyClient:
    """A botocore client made on first use: a run that never touches S3 (a local manifest,
    --no-wait) does not pay for loading S3's service model. Thread-safe."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
        return getattr(self._client, name)


@dataclass(frozen=True)
class Clients:
    # A DirectRuntimeClient, or the botocore client itself (Transport.BOTOCORE, a proxy, ...).
    sagemaker_runtime: RuntimeClient
    s3: S3Client
    sagemaker: SageMakerClient  # the control plane
    cloudwatch: CloudWatchClient  # the endpoint's metrics
    region: str
    session: Any  # a boto3 Session
    sqs_endpoint_url: str | None = None
    verify: bool | str | None = None

    def sqs(self, queue_url: str) -> SqsClient:
        """A client for the queue at ``queue_url``: unless an SQS endpoint is configured, the
        queue's own URL says where it is served."""
        import os
        from urllib.parse import urlsplit

        endpoint = self.sqs_endpoint_url
        if endpoint is None and not os.environ.get("AWS_ENDPOINT_URL_SQS"):
            parts = urlsplit(queue_url)
            endpoint = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None
        client: SqsClient = _client(self.session, "sqs", endpoint, None, self.verify)
        return client


# A boto3 Session is not safe for making clients from several threads at once (its credential
# and loader caches fill lazily), and lazy clients are made on whichever thread first needs one.
_CLIENT_CREATION = threading.Lock()


def _client(
    session: Any,
    service: str,
    endpoint_url: str | None,
    config: Any,
    verify: bool | str | None = None,
) -> Any:
    import botocore.exceptions

    try:
        with _CLIENT_CREATION:
            return session.client(service, endpoint_url=endpoint_url, config=config, verify=verify)
    except (ValueError, botocore.exceptions.BotoCoreError) as error:
        # "Invalid endpoint: notaurl", a region that is no region name, ...
        raise AwsConfigError(f"cannot make a {service} client: {error}") from error


def check_settings(settings: AwsSettings) -> None:
    """Refuse settings that cannot work, or that would put a secret into run.json."""
    from urllib.parse import urlsplit

    for option, url in (
        ("--endpoint-url", settings.endpoint_url),
        ("--s3-endpoint-url", settings.s3_endpoint_url),
        ("the SQS endpoint URL", settings.sqs_endpoint_url),
        ("the SageMaker API URL", settings.sagemaker_endpoint_url),
        ("the CloudWatch endpoint URL", settings.cloudwatch_endpoint_url),
    ):
        if url is None:
            continue
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises on a port that is no port
        except ValueError as error:
            raise AwsConfigError(f"{option} {url!r} is no URL: {error}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AwsConfigError(f"{option} must be an http:// or https:// URL, not {url!r}")
        if "@" in parts.netloc:
            raise AwsConfigError(
                f"{option} must not hold a user name or password (requests are signed with the "
                "AWS credentials; the URL is saved in run.json)"
            )
    if settings.ca_bundle is not None and not os.path.isfile(settings.ca_bundle):
        raise AwsConfigError(f"--ca-bundle {settings.ca_bundle!r}: no such file")
    owner = settings.expected_bucket_owner
    if owner is not None and not (len(owner) == 12 and owner.isascii() and owner.isdigit()):
        raise AwsConfigError(
            f"--expected-bucket-owner must be a 12-digit account ID, not {owner!r}"
        )


def make_clients(settings: AwsSettings, *, max_connections: int = 10) -> Clients:
    import boto3
    import botocore.exceptions
    from botocore.config import Config

    check_settings(settings)
    try:
        if settings.static_credentials:
            key, secret = settings.static_credentials
            session = boto3.Session(
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                region_name=settings.region or "us-east-1",
            )
        else:
            session = boto3.Session(profile_name=settings.profile, region_name=settings.region)
    except botocore.exceptions.ProfileNotFound as error:
        raise AwsConfigError(str(error)) from error
    region = session.region_name
    if not region:
        raise AwsConfigError(
            "no AWS region is configured: pass --region, set AWS_REGION, or use a profile with one"
        )
    # The embedded emulator (the only user of static credentials) is on loopback: a proxy set
    # for the user's real traffic must not take its calls.
    loopback: dict[str, Any] = {"proxies": {}} if settings.static_credentials else {}
    runtime_config = Config(
        user_agent_extra=USER_AGENT_EXTRA,
        # bulkinvoke's retry policy is the only retry layer, so that throttles reach the
        # adaptive rate limiter and every retry is counted.
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max_connections,
        # Every value was checked against the service model when the manifest was read;
        # validating again on each call costs client CPU for nothing.
        parameter_validation=False,
        connect_timeout=10,
        read_timeout=settings.call_timeout or DEFAULT_CALL_TIMEOUT,
        tcp_keepalive=True,
        **loopback,
    )
    s3_config = Config(
        user_agent_extra=USER_AGENT_EXTRA,
        retries={"max_attempts": 8, "mode": "standard"},
        max_pool_connections=max_connections,
        tcp_keepalive=True,
        **loopback,
    )
    # Read before a run (and the metrics once a minute): a few quick tries, and an unreachable
    # API is not worth a long wait.
    control_config = Config(
        user_agent_extra=USER_AGENT_EXTRA,
        retries={"total_max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=10,
        **loopback,
    )
    verify = settings.verification()
    if verify is False:
        import urllib3

        # One warning for the run (the session's), not one per request.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    runtime = _client(session, "sagemaker-runtime", settings.endpoint_url, runtime_config, verify)
    if settings.transport is not Transport.BOTOCORE:
        from bulkinvoke.calls.transport import direct_client

        runtime = direct_client(runtime, session, verify) or runtime
    return Clients(
        sagemaker_runtime=runtime,
        s3=LazyClient(lambda: _client(session, "s3", settings.s3_endpoint_url, s3_config, verify)),
        sagemaker=LazyClient(
            lambda: _client(
                session, "sagemaker", settings.sagemaker_endpoint_url, control_config, verify
            )
        ),
        cloudwatch=LazyClient(
            lambda: _client(
                session, "cloudwatch", settings.cloudwatch_endpoint_url, control_config, verify
            )
        ),
        region=region,
        session=session,
        sqs_endpoint_url=settings.sqs_endpoint_url,
        verify=verify,
    )
