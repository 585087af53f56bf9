"""Options that several commands share, defined once (as pip's ``cmdoptions``), and the AWS
overrides they make."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bulkinvoke.calls.aws import Transport
from bulkinvoke.run.doubt import InDoubt

if TYPE_CHECKING:
    from bulkinvoke.calls.aws import AwsSettings

RegionOption = Annotated[str | None, typer.Option(help="AWS region (default: the run's).")]
ProfileOption = Annotated[str | None, typer.Option(help="AWS profile (default: the run's).")]
EndpointUrlOption = Annotated[
    str | None, typer.Option(help="sagemaker-runtime endpoint URL (default: the run's).")
]
S3EndpointUrlOption = Annotated[
    str | None, typer.Option(help="S3 endpoint URL (default: the run's).")
]
TransportOption = Annotated[
    Transport | None,
    typer.Option(
        help="How calls are sent: direct (signed and parsed by botocore, sent on bulkinvoke's "
        "own keep-alive connections: half botocore's client CPU per call) or botocore (its "
        "whole HTTP stack). A proxy or a client certificate always means botocore "
        "(default: the run's, else direct).",
    ),
]
WaitOption = Annotated[bool, typer.Option(help="Wait for every output or failure.")]
TimeoutOption = Annotated[
    float | None, typer.Option(min=0, help="Stop waiting after this many seconds (resumable).")
]
NotificationsOption = Annotated[
    str | None,
    typer.Option(
        help="URL of an SQS queue subscribed to the endpoint's SNS success and error topics: "
        "results arrive without polling S3 (polling stays as the fallback)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON summary.")]
LedgerUriOption = Annotated[
    str | None,
    typer.Option(
        help="s3://bucket/prefix/ to keep a copy of the ledger in (each shard under "
        "shard-K-of-N/), uploaded after each compaction and at the end: a run moves to a new "
        "machine by `resume NEW_DIR --ledger-uri` with the run's own prefix."
    ),
]
QuietOption = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="No progress display (warnings and errors still go to stderr)."
    ),
]
CaBundleOption = Annotated[
    str | None,
    typer.Option(
        help="The CA certificate bundle to verify the endpoints' TLS certificates with (as the "
        "AWS CLI's --ca-bundle; AWS_CA_BUNDLE works too; saved with the run).",
    ),
]
NoVerifySslOption = Annotated[
    bool,
    typer.Option(
        "--no-verify-ssl",
        help="Do not verify TLS certificates (as the AWS CLI's --no-verify-ssl): anyone on the "
        "network path can read and change the calls. Never saved with the run.",
    ),
]
InDoubtOption = Annotated[
    InDoubt,
    typer.Option(
        help="What to do with calls a crash left in doubt (sent, answer lost) whose output is not "
        "in S3 yet: resend them at once with the same inference ID, or wait: watch their output "
        "and failure locations and resend only those still missing once overdue (a call accepted "
        "after them has its result and twice the longest latency seen has passed, or past their "
        "expiry).",
    ),
]
RunDirArgument = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="The run directory.")]


def aws_overrides(
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    s3_endpoint_url: str | None = None,
    transport: Transport | None = None,
    ca_bundle: str | None = None,
    no_verify_ssl: bool = False,
) -> AwsSettings:
    """The AWS settings given on the command line, each replacing the run's saved one."""
    from bulkinvoke.calls.aws import AwsSettings

    return AwsSettings(
        region,
        profile,
        endpoint_url,
        s3_endpoint_url,
        transport=transport,
        ca_bundle=ca_bundle,
        verify_ssl=False if no_verify_ssl else None,
    )
