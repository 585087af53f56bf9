"""What the emulator serves (endpoints) and how it behaves (latency, capacity, injected faults)."""

from __future__ import annotations

import math
import random
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from bulkinvoke.emulator.model import control_plane_shape, members

# From the SageMaker model (AsyncInferenceNotificationConfig.SuccessTopic / ErrorTopic).
TOPIC_ARN_PATTERN = re.compile(r"arn:aws[a-z\-]*:sns:([a-z0-9\-]*):([0-9]{12}):([a-zA-Z0-9_.-]+)")
_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?", re.DOTALL)

# What the emulator hands out, and --local uses, unless told otherwise.
LOCAL_CREDENTIALS = ("local", "local")
LatencyKind = Literal["fixed", "uniform", "exponential"]
MissingInput = Literal["fail", "reject"]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")``; ValueError if not S3."""
    match = _S3_URI.fullmatch(uri)
    if match is None:
        raise ValueError(f"{uri!r} is not an s3://bucket[/prefix] URI")
    return match.group(1), (match.group(2) or "").strip("/")


def join_key(*parts: str | None) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


@dataclass(frozen=True)
class Latency:
    """Processing time of one request, in seconds.

    ``seconds`` is the fixed value, the uniform minimum or the exponential mean; ``max_seconds``
    is the uniform maximum. The text form (CLI, admin API) is ``0.2``, ``fixed:0.2``,
    ``uniform:0.1-0.5`` or ``exponential:0.2`` (``exp:`` for short).
    """

    kind: LatencyKind = "fixed"
    seconds: float = 0.0
    max_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "uniform", "exponential"):
            raise ValueError(f"unknown latency kind {self.kind!r}")
        if not (math.isfinite(self.seconds) and math.isfinite(self.max_seconds)):
            raise ValueError("latency must be a finite number of seconds")
        if self.seconds < 0 or self.max_seconds < 0:
            raise ValueError("latency cannot be negative")
        if self.kind == "uniform" and self.max_seconds < self.seconds:
            raise ValueError("uniform latency needs min <= max")

    @classmethod
    def parse(cls, text: str) -> Latency:
        kind, _, value = text.strip().rpartition(":")
        kind = {"": "fixed", "exp": "exponential"}.get(kind, kind)
        try:
            if kind == "uniform":
                low, _, high = value.partition("-")
                return cls("uniform", float(low), float(high))
            if kind == "fixed":
                return cls("fixed", float(value))
            if kind == "exponential":
                return cls("exponential", float(value))
        except ValueError as exc:
            raise ValueError(f"bad latency {text!r}: {exc}") from None
        raise ValueError(f"bad latency {text!r}: use SECONDS, uniform:MIN-MAX or exponential:MEAN")

    def sample(self, rng: random.Random) -> float:
        if self.kind == "uniform":
            return rng.uniform(self.seconds, self.max_seconds)
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.seconds) if self.seconds > 0 else 0.0
        return self.seconds

    def __str__(self) -> str:
        if self.kind == "uniform":
            return f"uniform:{self.seconds:g}-{self.max_seconds:g}"
        return f"{self.kind}:{self.seconds:g}"


def _latency(value: object, name: str) -> Latency:
    if isinstance(value, Latency):
        return value
    if isinstance(value, str):
        return Latency.parse(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Latency("fixed", float(value))
    raise ValueError(f"{name} must be seconds or text such as 'uniform:0.1-0.5', not {value!r}")


@dataclass
class EmulatorConfig:
    """Behaviour of the async endpoint; every field can also be changed while it runs.

    ``time_scale`` multiplies RequestTTLSeconds and InvocationTimeoutSeconds when a worker checks
    them: the API will not take a TTL under 60 s, so demos and tests shrink time instead
    (0.01 turns the 60 s minimum into 0.6 s). It does not touch ``latency``.
    """

    workers: int = 8
    latency: Latency = field(default_factory=Latency)
    # The round trip of a call across a network: each InvokeEndpointAsync answer waits this
    # long (the processing ``latency`` above is the model's, after the answer).
    network_latency: Latency = field(default_factory=Latency)
    capacity_per_second: float | None = None
    unavailable_probability: float = 0.0
    internal_failure_probability: float = 0.0
    model_failure_probability: float = 0.0
    missing_input: MissingInput = "fail"
    seed: int | None = None
    account: str = "123456789012"
    region: str = "us-east-1"
    time_scale: float = 1.0
    # The access keys the endpoint knows, with their secrets: it checks every call's SigV4
    # signature with them (emulator/sigv4.py). The first is the one it hands out.
    credentials: dict[str, str] = field(default_factory=lambda: dict([LOCAL_CREDENTIALS]))
    # Seconds between two publications of each endpoint's CloudWatch metrics (the backlog and
    # ModelLatency, emulator/metrics.py) to moto; SageMaker publishes once a minute. 0: never.
    metrics_seconds: float = 60.0

    def __post_init__(self) -> None:
        # The admin API and the CLI give latencies as text, or seconds as a number.
        self.latency = _latency(self.latency, "latency")
        self.network_latency = _latency(self.network_latency, "network_latency")
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.workers, int) or not 1 <= self.workers <= 1024:
            found.append("workers must be a whole number from 1 to 1024")
        if self.capacity_per_second is not None and not self.capacity_per_second > 0:
            found.append("capacity_per_second must be positive (or None for unlimited)")
        for name in (
            "unavailable_probability",
            "internal_failure_probability",
            "model_failure_probability",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                found.append(f"{name} must be between 0 and 1")
        if self.missing_input not in ("fail", "reject"):
            found.append("missing_input must be 'fail' or 'reject'")
        if not re.fullmatch(r"[0-9]{12}", self.account):
            found.append("account must be 12 digits")
        if not self.time_scale > 0:
            found.append("time_scale must be positive")
        if not self.metrics_seconds >= 0:
            found.append("metrics_seconds must be 0 or more")
        if not self.credentials or not all(self.credentials.values()):
            found.append("credentials must name at least one access key, each with a secret")
        return found

    def with_changes(self, changes: dict[str, Any]) -> EmulatorConfig:
        """A copy with ``changes`` applied (the latencies may be given in their text form)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency"] = str(self.latency)
        data["network_latency"] = str(self.network_latency)
        # Secrets are not shown (nor are the keys: what is shown can be posted back as is).
        del data["credentials"]
        return data


@dataclass
class EndpointSpec:
    """One async endpoint, as its AsyncInferenceConfig would declare it.

    ``handler`` is ``"module:function"`` (see ``handlers.Handler``); None uses the default
    summary handler. ``status``, ``instances``, ``instance_type``,
    ``max_concurrent_per_instance`` and ``asynchronous`` are what DescribeEndpoint and
    DescribeEndpointConfig report (``control.py``); they do not change how calls are processed
    (``EmulatorConfig.workers`` does), except for a scale from zero: with ``instances=0`` and
    ``scale_up_seconds``, accepted calls wait until the endpoint has its first instance, which
    it gets that long after the first call (as autoscaling on HasBacklogWithoutCapacity does).
    ``asynchronous=False`` describes a real-time endpoint: no AsyncInferenceConfig.
    """

    name: str
    output_path: str
    failure_path: str | None = None
    success_topic: str | None = None
    error_topic: str | None = None
    handler: str | None = None
    status: str = "InService"
    instances: int = 1
    instance_type: str = "ml.m5.xlarge"
    max_concurrent_per_instance: int | None = None
    asynchronous: bool = True
    scale_up_seconds: float | None = None

    def problems(self) -> list[str]:
        found = self._description_problems()
        name = members()["EndpointName"]
        if name.problem(self.name) is not None:
            found.append(
                f"endpoint name {self.name!r} must be 1-{name.maximum} letters, digits "
                "and inner hyphens"
            )
        for label, uri in (("output_path", self.output_path), ("failure_path", self.failure_path)):
            if uri is not None:
                try:
                    split_s3_uri(uri)
                except ValueError as exc:
                    found.append(f"{label}: {exc}")
        for label, arn in (
            ("success_topic", self.success_topic),
            ("error_topic", self.error_topic),
        ):
            if arn is not None and not TOPIC_ARN_PATTERN.fullmatch(arn):
                found.append(f"{label} {arn!r} is not an SNS topic ARN")
        if self.handler is not None and not re.fullmatch(r"[\w.]+:[\w.]+", self.handler):
            found.append(f"handler {self.handler!r} must be 'module:function'")
        return found

    def _description_problems(self) -> list[str]:
        found = []
        statuses, _ = control_plane_shape("EndpointStatus")
        if self.status not in statuses:
            found.append(f"status {self.status!r} is not one of {', '.join(statuses)}")
        if not isinstance(self.instances, int) or self.instances < 0:
            found.append("instances must be a whole number, 0 or more")
        if self.scale_up_seconds is not None and not self.scale_up_seconds >= 0:
            found.append("scale_up_seconds must be 0 or more")
        _, limits = control_plane_shape("MaxConcurrentInvocationsPerInstance")
        count = self.max_concurrent_per_instance
        if count is not None and not limits["min"] <= count <= limits["max"]:
            found.append(
                f"max_concurrent_per_instance must be {limits['min']}-{limits['max']}, not {count}"
            )
        return found

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
