"""``bulkinvoke emulator``: a local SageMaker async endpoint; moto serves S3/SNS/SQS/CloudWatch."""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bulkinvoke.cli.errors import fail

if TYPE_CHECKING:
    from bulkinvoke.emulator import EndpointSpec, LocalStack

DEFAULT_ENDPOINT = "demo=s3://bulkinvoke-local/outputs,failure=s3://bulkinvoke-local/failures"


def _yes_or_no(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, not {text!r}")
    return text.lower() == "true"


# key=VALUE in --endpoint: the EndpointSpec field it sets, and how its text is read.
_ENDPOINT_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "failure": ("failure_path", str),
    "success_topic": ("success_topic", str),
    "error_topic": ("error_topic", str),
    "handler": ("handler", str),
    "status": ("status", str),
    "instances": ("instances", int),
    "instance_type": ("instance_type", str),
    "max_concurrency": ("max_concurrent_per_instance", int),
    "async": ("asynchronous", _yes_or_no),
    "scale_up": ("scale_up_seconds", float),
}


def parse_endpoint(text: str, default_handler: str | None = None) -> EndpointSpec:
    """``NAME=s3://bucket/out[,failure=s3://...][,success_topic=ARN][,error_topic=ARN]
    [,handler=module:function][,status=S][,instances=N][,instance_type=T][,max_concurrency=N]
    [,async=false][,scale_up=SECONDS]`` as an EndpointSpec."""
    # Imported here, as in emulator_command: the emulator package imports boto3, which every
    # other command (and `bulkinvoke --help`) would pay for at start-up.
    from bulkinvoke.emulator import EndpointSpec

    name, equals, rest = text.partition("=")
    output_path, *pairs = rest.split(",")
    if not equals or not output_path:
        raise typer.BadParameter(f"{text!r}: expected NAME=s3://bucket/prefix[,key=value...]")
    fields: dict[str, Any] = {"handler": default_handler}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if key.strip() not in _ENDPOINT_KEYS or not equals:
            keys = ", ".join(_ENDPOINT_KEYS)
            raise typer.BadParameter(f"{text!r}: {pair!r} is not one of {keys} with =VALUE")
        field, read = _ENDPOINT_KEYS[key.strip()]
        try:
            fields[field] = read(value.strip())
        except ValueError as error:
            raise typer.BadParameter(f"{text!r}: {key.strip()}: {error}") from None
    spec = EndpointSpec(name=name.strip(), output_path=output_path.strip(), **fields)
    problems = spec.problems()
    if problems:
        raise typer.BadParameter("; ".join(problems))
    return spec


def _describe(stack: LocalStack) -> None:
    typer.echo("bulkinvoke emulator is running; Ctrl-C stops it.")
    typer.echo(f"  S3, SNS, SQS (moto)  {stack.s3_url}")
    typer.echo(f"  SageMaker runtime    {stack.sagemaker_url}")
    typer.echo(f"  SageMaker API        {stack.sagemaker_url}  (DescribeEndpoint[Config])")
    typer.echo(f"  emulator stats       {stack.sagemaker_url}/_emulator/stats")
    typer.echo(f"  change knobs         POST JSON to {stack.sagemaker_url}/_emulator/config")
    for spec in stack.endpoints():
        failure = f", failures to {spec.failure_path}" if spec.failure_path else ""
        typer.echo(f"  endpoint {spec.name}: outputs to {spec.output_path}{failure}")
    typer.echo("Point boto3 and the aws CLI at it with:")
    for name, value in stack.environment().items():
        typer.echo(f"export {name}={value}")


def _credentials(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        key, colon, secret = pair.partition(":")
        if not colon or not key or not secret:
            raise typer.BadParameter(f"{pair!r}: expected KEY:SECRET", param_hint="--credentials")
        found[key] = secret
    return found


class MissingInputMode(StrEnum):
    fail = "fail"
    reject = "reject"


@contextlib.contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM, so stopping is a normal exit, not a traceback."""
    stopping = threading.Event()
    handlers = {
        sig: signal.signal(sig, lambda *_: stopping.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stopping
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def emulator_command(
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            "-e",
            help=(
                "An endpoint to serve, repeatable: NAME=s3://bucket/out[,failure=s3://bucket/fail]"
                "[,success_topic=ARN][,error_topic=ARN][,handler=module:function]; what "
                "DescribeEndpoint reports: [,status=InService][,instances=1]"
                "[,instance_type=ml.m5.xlarge][,max_concurrency=N][,async=false]; with "
                "instances=0, [,scale_up=SECONDS] holds calls until the first instance comes "
                f"that long after the first call. Default: {DEFAULT_ENDPOINT}."
            ),
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    s3_port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, help="Port of moto's S3/SNS/SQS/CloudWatch server (0: any free port)."
        ),
    ] = 0,
    sagemaker_port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, help="Port of the SageMaker runtime endpoint (0: any free port)."
        ),
    ] = 0,
    s3_url: Annotated[
        str | None,
        typer.Option(help="Use this running S3-compatible server instead of starting moto."),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker threads processing queued invocations.")
    ] = 8,
    latency: Annotated[
        str,
        typer.Option(
            help="Processing time per invocation: SECONDS, uniform:MIN-MAX or exponential:MEAN."
        ),
    ] = "0",
    network_latency_ms: Annotated[
        float,
        typer.Option(
            min=0,
            help="Network round trip per call, in ms: each InvokeEndpointAsync answer waits a "
            "uniform draw within 25% of it, as across a network (default 0: loopback).",
        ),
    ] = 0,
    capacity: Annotated[
        float | None,
        typer.Option(
            help="Calls per second accepted before ThrottlingException (default: no limit)."
        ),
    ] = None,
    unavailable_probability: Annotated[
        float, typer.Option(min=0, max=1, help="Chance that a call gets ServiceUnavailable (503).")
    ] = 0.0,
    internal_failure_probability: Annotated[
        float, typer.Option(min=0, max=1, help="Chance that a call gets InternalFailure (500).")
    ] = 0.0,
    model_failure_probability: Annotated[
        float,
        typer.Option(min=0, max=1, help="Chance that an accepted invocation fails in the model."),
    ] = 0.0,
    missing_input: Annotated[
        MissingInputMode,
        typer.Option(
            help="A missing input object: 'fail' writes a failure object, 'reject' refuses the "
            "call with ValidationError."
        ),
    ] = MissingInputMode.fail,
    handler: Annotated[
        str | None,
        typer.Option(
            help="Default model handler, module:function (default: a JSON summary of the input)."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for latency and fault draws.")] = None,
    time_scale: Annotated[
        float,
        typer.Option(help="Factor applied to RequestTTLSeconds and InvocationTimeoutSeconds."),
    ] = 1.0,
    account: Annotated[
        str, typer.Option(help="Account ID named in 'endpoint not found' errors.")
    ] = "123456789012",
    region: Annotated[str, typer.Option(help="Region of the emulated services.")] = "us-east-1",
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Serve HTTPS only, as AWS does, with a CA of its own: its certificate is written "
            "to --tls-dir and printed as AWS_CA_BUNDLE.",
        ),
    ] = False,
    tls_dir: Annotated[
        Path | None,
        typer.Option(
            help="With --tls: where to write the CA and the server certificate "
            "(default: a new temporary directory)."
        ),
    ] = None,
    metrics_seconds: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between two publications of each endpoint's CloudWatch metrics "
            "(ApproximateBacklogSize[PerInstance], HasBacklogWithoutCapacity, ModelLatency) "
            "to moto's CloudWatch; 0: never.",
        ),
    ] = 60.0,
    credentials: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY:SECRET an access key the endpoint accepts, with its secret (repeatable; "
            "every call's SigV4 signature is checked with it; the first is printed for clients). "
            "Default: local:local.",
        ),
    ] = None,
) -> None:
    """Serve a local SageMaker asynchronous inference endpoint, with S3, SNS, SQS and CloudWatch."""
    from botocore.exceptions import BotoCoreError, ClientError

    from bulkinvoke.emulator import EmulatorConfig, Latency, start_local_stack

    specs = [parse_endpoint(text, handler) for text in endpoint or [DEFAULT_ENDPOINT]]
    try:
        config = EmulatorConfig(
            workers=workers,
            latency=Latency.parse(latency),
            network_latency=Latency(
                "uniform", 0.75 * network_latency_ms / 1000, 1.25 * network_latency_ms / 1000
            ),
            capacity_per_second=capacity,
            unavailable_probability=unavailable_probability,
            internal_failure_probability=internal_failure_probability,
            model_failure_probability=model_failure_probability,
            missing_input=missing_input.value,
            seed=seed,
            account=account,
            region=region,
            credentials=_credentials(credentials or ["local:local"]),
            time_scale=time_scale,
            metrics_seconds=metrics_seconds,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    tls_files = None
    if tls:
        from bulkinvoke.emulator.tls import write_tls_files

        tls_files = write_tls_files(tls_dir or Path(tempfile.mkdtemp(prefix="bulkinvoke-tls-")))
    with _stop_signals() as stopping:
        try:
            stack = start_local_stack(
                specs, config, host=host, s3_port=s3_port, sagemaker_port=sagemaker_port,
                s3_url=s3_url, tls=tls_files,
            )  # fmt: skip
        except (OSError, ValueError, BotoCoreError, ClientError) as exc:
            # A port in use, an unknown handler, an --s3-url that is no S3 server.
            fail(f"cannot start the emulator: {exc}")
        try:
            _describe(stack)
            # A timed wait, so the signal handler gets its turn promptly.
            while not stopping.wait(0.5):
                pass
        finally:
            stack.stop()
    typer.echo("bulkinvoke emulator stopped.")
