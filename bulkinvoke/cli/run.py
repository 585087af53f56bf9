"""The commands that go on with a run: ``resume``, ``collect`` and ``retry``, and what they share
with ``submit``: how a run shows its progress and its result.

Each parses its options, calls one function of ``bulkinvoke.run.runner`` and renders the
:class:`~bulkinvoke.run.runner.RunResult`; the exit code is the result's.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from bulkinvoke.cli.errors import err, expected_errors
from bulkinvoke.cli.options import (
    CaBundleOption,
    EndpointUrlOption,
    InDoubtOption,
    JsonOption,
    NotificationsOption,
    NoVerifySslOption,
    ProfileOption,
    QuietOption,
    RegionOption,
    RunDirArgument,
    S3EndpointUrlOption,
    TimeoutOption,
    TransportOption,
    WaitOption,
    aws_overrides,
)
from bulkinvoke.cli.render import out, render_report, render_summary
from bulkinvoke.run.doubt import InDoubt

if TYPE_CHECKING:
    from bulkinvoke.events import Subscribers
    from bulkinvoke.run.runner import RunResult
    from bulkinvoke.scale.mirror_settings import MirrorSettings


@dataclass(frozen=True)
class RunDisplay:
    """How a command that runs shows its progress and its result."""

    as_json: bool
    quiet: bool

    def subscribers(self, stack: ExitStack) -> Subscribers:
        from bulkinvoke.cli.progress import LiveProgress, LogProgress, WarningsOnly
        from bulkinvoke.events import Subscribers

        if self.quiet or self.as_json:
            return Subscribers([WarningsOnly()])
        if err.is_terminal:
            return Subscribers([stack.enter_context(LiveProgress(err))])
        return Subscribers([stack.enter_context(LogProgress())])

    def result(self, result: RunResult) -> NoReturn:
        from bulkinvoke.reports.summary import result_summary

        summary = result_summary(result)
        if self.as_json:
            out.print_json(json.dumps(summary))
        else:
            from bulkinvoke.reports.model import build_report

            render_report(out, build_report(result.run_dir))
            render_summary(out, summary)
        raise typer.Exit(int(result.exit_code))


def mirror_settings(uri: str | None, lease_seconds: float | None = None) -> MirrorSettings | None:
    from bulkinvoke.scale.mirror_settings import MirrorSettings

    if uri is None:
        return None
    return MirrorSettings(uri) if lease_seconds is None else MirrorSettings(uri, lease_seconds)


def _continue_run(
    run: Callable[..., RunResult],
    run_dir: Path,
    go_on_with: str,
    display: RunDisplay,
    **session: object,
) -> NoReturn:
    """What resume, collect and retry share: ``run(run_dir, subscribers=..., **session)`` in
    the saved run, one result; after Ctrl-C the user goes on with ``bulkinvoke GO_ON_WITH
    RUN_DIR``."""
    go_on = f"continue with `bulkinvoke {go_on_with} {shlex.quote(str(run_dir))}`"
    with ExitStack() as stack, expected_errors(go_on):
        result = run(run_dir, subscribers=display.subscribers(stack), **session)
    display.result(result)


def resume(
    run_dir: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR",
            help="The run directory to continue; with --ledger-uri it may be empty or missing, "
            "and is then filled from S3.",
        ),
    ],
    wait: WaitOption = True,
    ledger_uri: Annotated[
        str | None,
        typer.Option(
            help="The S3 prefix this run's ledger is mirrored to (a shard's own "
            "s3://.../shard-K-of-N/) (default: the one in run.json)."
        ),
    ] = None,
    timeout: TimeoutOption = None,
    notifications_queue: NotificationsOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    s3_endpoint_url: S3EndpointUrlOption = None,
    transport: TransportOption = None,
    ca_bundle: CaBundleOption = None,
    no_verify_ssl: NoVerifySslOption = False,
    in_doubt: InDoubtOption = InDoubt.RESEND,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Continue an interrupted run: nothing is lost, nothing finished is sent again."""
    from bulkinvoke.run import runner

    with expected_errors():
        mirror = mirror_settings(ledger_uri)
    _continue_run(
        runner.resume,
        run_dir,
        "resume",
        RunDisplay(as_json, quiet),
        wait=wait,
        mirror=mirror,
        in_doubt=in_doubt,
        timeout=timeout,
        notifications_queue=notifications_queue,
        aws=aws_overrides(
            region, profile, endpoint_url, s3_endpoint_url, transport, ca_bundle, no_verify_ssl
        ),
    )


def collect(
    run_dir: RunDirArgument,
    wait: Annotated[
        bool, typer.Option(help="Keep looking until every sent item has a result.")
    ] = False,
    timeout: TimeoutOption = None,
    notifications_queue: NotificationsOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    s3_endpoint_url: S3EndpointUrlOption = None,
    ca_bundle: CaBundleOption = None,
    no_verify_ssl: NoVerifySslOption = False,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Record the outputs and failures that have appeared since; sends nothing."""
    from bulkinvoke.run import runner

    _continue_run(
        runner.collect,
        run_dir,
        "collect",
        RunDisplay(as_json, quiet),
        wait=wait,
        timeout=timeout,
        notifications_queue=notifications_queue,
        aws=aws_overrides(
            region, profile, endpoint_url, s3_endpoint_url, None, ca_bundle, no_verify_ssl
        ),
    )


def retry(
    run_dir: RunDirArgument,
    failed: Annotated[bool, typer.Option("--failed", help="Retry failed items.")] = False,
    expired: Annotated[bool, typer.Option("--expired", help="Retry expired items.")] = False,
    rejected: Annotated[bool, typer.Option("--rejected", help="Retry rejected items.")] = False,
    wait: WaitOption = True,
    timeout: TimeoutOption = None,
    notifications_queue: NotificationsOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    s3_endpoint_url: S3EndpointUrlOption = None,
    transport: TransportOption = None,
    ca_bundle: CaBundleOption = None,
    no_verify_ssl: NoVerifySslOption = False,
    in_doubt: InDoubtOption = InDoubt.RESEND,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Send failed/expired/rejected items again as a new attempt with a new inference ID
    (default: --failed --expired), with the run's saved options."""
    from bulkinvoke.run import runner
    from bulkinvoke.states import State

    chosen = tuple(
        state
        for state, wanted in (
            (State.FAILED, failed),
            (State.EXPIRED, expired),
            (State.REJECTED, rejected),
        )
        if wanted
    ) or (State.FAILED, State.EXPIRED)
    _continue_run(
        runner.retry,
        run_dir,
        "resume",
        RunDisplay(as_json, quiet),
        states=chosen,
        in_doubt=in_doubt,
        wait=wait,
        timeout=timeout,
        notifications_queue=notifications_queue,
        aws=aws_overrides(
            region, profile, endpoint_url, s3_endpoint_url, transport, ca_bundle, no_verify_ssl
        ),
    )
