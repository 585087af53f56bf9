"""The ``bulkinvoke`` command: each command parses its options, calls one library function and
renders what it returns. Expected failures become a one-line message and a documented exit code.
"""

from __future__ import annotations

import json
import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from bulkinvoke.calls.aws import Transport
from bulkinvoke.cli.emulator import emulator_command
from bulkinvoke.cli.errors import err, fail, wide_when_piped
from bulkinvoke.cli.report import report_command
from bulkinvoke.exit_codes import EXIT_CODES_HELP, ExitCode

if TYPE_CHECKING:
    from bulkinvoke.calls.aws import AwsSettings
    from bulkinvoke.events import Subscribers
    from bulkinvoke.run.runner import DryRun, RunResult
    from bulkinvoke.scale.mirror import MirrorSettings
    from bulkinvoke.scale.shards import Shard

app = typer.Typer(
    name="bulkinvoke",
    help="Run a whole S3 dataset through a SageMaker asynchronous inference endpoint, "
    "resumably, with a Parquet ledger. " + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("emulator", help="Serve a local async endpoint plus S3/SNS/SQS on 127.0.0.1.")(
    emulator_command
)
app.command("report", help="Report on a run: counts, timings, latency, failures, charts.")(
    report_command
)
# soft_wrap: a line is never broken at the terminal's (or a pipe's 80-column) width, so that
# figures and the commands printed to copy stay whole.
out = wide_when_piped(Console(soft_wrap=True))

MAX_PROBLEMS_SHOWN = 20


@contextmanager
def _expected_errors(go_on: str = "run the same command again") -> Iterator[None]:
    """Turn the failures a user can cause into a message and exit 2, never a traceback;
    ``go_on`` says how to continue after Ctrl-C."""
    from bulkinvoke.calls.aws import AwsConfigError
    from bulkinvoke.export.table import ExportError
    from bulkinvoke.ledger.errors import LedgerError, LedgerWriteError
    from bulkinvoke.manifest.loader import ManifestError
    from bulkinvoke.run.runner import InvalidManifest, RunError

    try:
        with _sigterm_as_ctrl_c():
            yield
    except LedgerWriteError as error:
        # A full disk or an I/O error is no usage error: the run stopped, and what is on disk
        # is whole, so it resumes once the disk can be written again.
        fail(
            f"{error}. The run stopped; once the disk can be written again, {go_on}",
            ExitCode.STOPPED,
        )
    except InvalidManifest as error:
        problems = error.manifest.problems
        for problem in problems[:MAX_PROBLEMS_SHOWN]:
            err.print(str(problem), highlight=False, markup=False, soft_wrap=True)
        if len(problems) > MAX_PROBLEMS_SHOWN:
            err.print(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more invalid rows")
        fail(f"{error} (use --skip-invalid to record them as rejected and go on)")
    except (ManifestError, RunError, AwsConfigError, LedgerError, ExportError) as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail(
            f"interrupted; nothing is lost: {go_on}",
            ExitCode.INTERRUPTED,
        )


@contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """A scheduler stops a job with SIGTERM (AWS Batch, Kubernetes, systemd), with time to spare
    before SIGKILL: taken as Ctrl-C, the calls in flight get to finish. Only the main thread can
    set a handler, and a SIGTERM the caller chose to ignore stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        # None: a handler set outside Python, which cannot be put back; the default is closest.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _subscribers(stack: ExitStack, quiet: bool) -> Subscribers:
    from bulkinvoke.cli.progress import LiveProgress, LogProgress, WarningsOnly
    from bulkinvoke.events import Subscribers

    if quiet:
        return Subscribers([WarningsOnly()])
    if err.is_terminal:
        return Subscribers([stack.enter_context(LiveProgress(err))])
    return Subscribers([stack.enter_context(LogProgress())])


def _render_result(result: RunResult, as_json: bool) -> NoReturn:
    from bulkinvoke.reports.summary import result_summary

    summary = result_summary(result)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        from bulkinvoke.reports.model import build_report
        from bulkinvoke.reports.summary import render_summary
        from bulkinvoke.reports.text import render_text

        render_text(out, build_report(result.run_dir))
        render_summary(out, summary)
    raise typer.Exit(int(result.exit_code))


def _render_dry_run(plan: DryRun, as_json: bool) -> None:
    summary = {
        "run_dir": str(plan.run_dir),
        "items": plan.total,
        "already_done": plan.already_done,
        "to_send": plan.to_send,
        "duplicates": plan.duplicates,
        "invalid": plan.invalid,
        "estimated_seconds": plan.estimated_s,
        "first_ids": [{"input_location": loc, "inference_id": i} for loc, i in plan.first_ids],
    }
    if as_json:
        out.print_json(json.dumps(summary))
        return
    out.print(f"dry run: nothing was sent. Run directory: {plan.run_dir}")
    out.print(
        f"{plan.total} items, {plan.already_done} already done, {plan.to_send} to send; "
        f"{plan.duplicates} duplicate rows skipped, {plan.invalid} invalid rows"
    )
    for location, identifier in plan.first_ids:
        out.print(f"  {identifier}  {location}", highlight=False)
    if plan.estimated_s is None:
        out.print("no --rate given: the time depends on the endpoint's speed")
    else:
        out.print(f"at the given rate, sending takes about {plan.estimated_s:.0f} s")


@app.command(
    short_help="Send every row of a manifest and wait for the results.",
    epilog=EXIT_CODES_HELP,
)
def submit(
    manifest: Annotated[
        str,
        typer.Argument(
            metavar="MANIFEST",
            help="CSV/TSV, text, JSON Lines, Parquet or ManifestFile JSON, "
            "or an s3://bucket/prefix/ to take every object under it.",
        ),
    ],
    endpoint: Annotated[str, typer.Option(help="Name of the async inference endpoint.")],
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the ledger lives (default: bulkinvoke-runs/<manifest>-<endpoint>)."
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Most calls per second (adapts down on throttling). With --shards N it is the "
            "endpoint's total: each shard takes rate/N. Default: no limit until the endpoint "
            "throttles, then adapted to what it takes.",
        ),
    ] = None,
    concurrency: Annotated[
        # Each call in progress is a thread and a pooled connection (the pool is allocated at
        # its full size): a mistyped 10**9 would exhaust memory rather than be refused.
        int, typer.Option(min=1, max=1024, help="Most calls in progress at once (at most 1024).")
    ] = 16,
    max_in_flight: Annotated[
        int | None,
        typer.Option(min=1, help="Most items accepted by the endpoint but not yet finished."),
    ] = None,
    content_type: Annotated[str | None, typer.Option(help="ContentType of the inputs.")] = None,
    accept: Annotated[str | None, typer.Option(help="Accept: the output type wanted.")] = None,
    custom_attributes: Annotated[
        str | None, typer.Option(help="CustomAttributes sent with each call (kept out of logs).")
    ] = None,
    request_ttl_seconds: Annotated[
        int | None, typer.Option(help="RequestTTLSeconds, 60-21600: how long a request may queue.")
    ] = None,
    invocation_timeout_seconds: Annotated[
        int | None, typer.Option(help="InvocationTimeoutSeconds, 1-3600.")
    ] = None,
    output_path_extension: Annotated[
        str | None, typer.Option(help="S3OutputPathExtension: a sub-path for this run's outputs.")
    ] = None,
    id_namespace: Annotated[
        str, typer.Option(help="Mixed into every inference ID (a model version, say).")
    ] = "",
    wait: Annotated[bool, typer.Option(help="Wait for every output or failure.")] = True,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Stop waiting after this many seconds (resumable).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Validate and estimate; send nothing, write nothing.")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option(help="Record invalid manifest rows as rejected instead of refusing.")
    ] = False,
    max_failures: Annotated[
        str | None, typer.Option(help="Stop the run (resumably) after N failures, or P% of items.")
    ] = None,
    expire_after: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="Seconds after acceptance with no result before an item is expired "
            "(default: its TTL + invocation timeout + 300).",
        ),
    ] = None,
    local: Annotated[
        bool, typer.Option(help="Use the embedded local emulator: no AWS account needed.")
    ] = False,
    local_inputs: Annotated[
        Path | None,
        typer.Option(
            help="With --local: folder of input files to upload "
            "(default: <manifest stem>-inputs/ beside the manifest)."
        ),
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region.")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile.")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="sagemaker-runtime endpoint URL (an emulator, say).")
    ] = None,
    s3_endpoint_url: Annotated[str | None, typer.Option(help="S3 endpoint URL.")] = None,
    expected_bucket_owner: Annotated[
        str | None, typer.Option(help="Account ID that must own every bucket read.")
    ] = None,
    call_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            max=3600,
            help="Seconds to wait for each InvokeEndpointAsync answer before retrying it with "
            "the same inference ID, 0.1-3600 (default: 60).",
        ),
    ] = None,
    transport: TransportOption = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Run only shard K of N: K/N, K with --shards N, or auto (K from "
            "AWS_BATCH_JOB_ARRAY_INDEX, N from --shards or AWS_BATCH_JOB_ARRAY_SIZE). A row's "
            "shard is a hash of its inference ID; each shard is its own run "
            "(default run dir: ...-shard-K-of-N). See docs/SCALE-OUT.md.",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=10000,
            help="How many shards the manifest is split into; --rate is then shared: each "
            "shard takes rate/N.",
        ),
    ] = None,
    ledger_uri: LedgerUriOption = None,
    ledger_lease_seconds: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="With --ledger-uri: how long this process's claim on the S3 ledger lasts "
            "unless renewed (every third of it); a machine that dies blocks a new one for at "
            "most this long (default 60).",
        ),
    ] = None,
    notifications_queue: NotificationsOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Submit every row of MANIFEST to an async endpoint, record it, and wait for the results."""
    from bulkinvoke.calls.aws import AwsSettings
    from bulkinvoke.request_options import RequestOptions
    from bulkinvoke.run.runner import RunOptions

    request = RequestOptions(
        content_type, accept, custom_attributes, request_ttl_seconds, invocation_timeout_seconds
    )
    chosen_shard = _shard(shard, shards)
    if rate is not None and shards is not None:
        rate /= shards
    mirror = _mirror_settings(ledger_uri, ledger_lease_seconds)
    aws = AwsSettings(
        region=region,
        profile=profile,
        endpoint_url=endpoint_url,
        s3_endpoint_url=s3_endpoint_url,
        expected_bucket_owner=expected_bucket_owner,
        call_timeout=call_timeout,
        transport=transport,
    )
    options = RunOptions(
        endpoint=endpoint,
        request=request,
        output_path_extension=output_path_extension,
        id_namespace=id_namespace,
        rate=rate,
        concurrency=concurrency,
        max_in_flight=max_in_flight,
        max_failures=max_failures,
        expire_after=expire_after,
        aws=aws,
    )
    from bulkinvoke.run.runner import default_run_dir

    run_dir = run_dir or default_run_dir(manifest, endpoint, chosen_shard)
    go_on = (
        "run the same command again (the --local emulator ends with it)"
        if local
        else f"continue with `bulkinvoke resume {shlex.quote(str(run_dir))}`"
    )
    with ExitStack() as stack, _expected_errors(go_on):
        if local:
            from dataclasses import replace

            from bulkinvoke.run.local import local_endpoint

            settings = stack.enter_context(
                local_endpoint(
                    manifest,
                    endpoint,
                    inputs_dir=local_inputs,
                    expected_bucket_owner=expected_bucket_owner,
                )
            )
            options = replace(options, aws=settings)
        if dry_run:
            from bulkinvoke.run.runner import dry_run as plan_run

            _render_dry_run(
                plan_run(
                    manifest,
                    options,
                    run_dir=run_dir,
                    skip_invalid=skip_invalid,
                    shard=chosen_shard,
                ),
                as_json,
            )
            return
        from bulkinvoke.run.runner import submit as submit_run

        result = submit_run(
            manifest,
            options,
            run_dir=run_dir,
            wait=wait,
            timeout=timeout,
            skip_invalid=skip_invalid,
            notifications_queue=notifications_queue,
            subscribers=_subscribers(stack, quiet or as_json),
            shard=chosen_shard,
            mirror=mirror,
            local=local,
        )
    _render_result(result, as_json)


def _shard(spec: str | None, shards: int | None) -> Shard | None:
    import os

    from bulkinvoke.scale.shards import ShardError, resolve_shard

    try:
        return resolve_shard(spec, shards, os.environ)
    except ShardError as error:
        fail(str(error))


def _mirror_settings(uri: str | None, lease_seconds: float | None = None) -> MirrorSettings | None:
    from bulkinvoke.scale.mirror import MirrorError, MirrorSettings

    if uri is None:
        return None
    try:
        return MirrorSettings(uri) if lease_seconds is None else MirrorSettings(uri, lease_seconds)
    except MirrorError as error:
        fail(str(error))


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


def _aws_overrides(
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
    s3_endpoint_url: str | None,
    transport: Transport | None = None,
) -> AwsSettings:
    from bulkinvoke.calls.aws import AwsSettings

    return AwsSettings(region, profile, endpoint_url, s3_endpoint_url, transport=transport)


def _continue_run(
    run: partial[RunResult],
    go_on_with: str,
    timeout: float | None,
    notifications_queue: str | None,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
    s3_endpoint_url: str | None,
    transport: Transport | None,
    as_json: bool,
    quiet: bool,
) -> NoReturn:
    """What resume, collect and retry share: the saved run, these overrides, one result;
    after Ctrl-C the user goes on with ``bulkinvoke GO_ON_WITH RUN_DIR``."""
    go_on = f"continue with `bulkinvoke {go_on_with} {shlex.quote(str(run.args[0]))}`"
    with ExitStack() as stack, _expected_errors(go_on):
        result = run(
            timeout=timeout,
            aws=_aws_overrides(region, profile, endpoint_url, s3_endpoint_url, transport),
            notifications_queue=notifications_queue,
            subscribers=_subscribers(stack, quiet or as_json),
        )
    _render_result(result, as_json)


@app.command(
    short_help="Continue an interrupted run.",
    epilog=EXIT_CODES_HELP,
)
def resume(
    run_dir: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR",
            help="The run directory to continue; with --ledger-uri it may be empty or missing, "
            "and is then filled from S3.",
        ),
    ],
    wait: Annotated[bool, typer.Option(help="Wait for every output or failure.")] = True,
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
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Continue an interrupted run: nothing is lost, nothing finished is sent again."""
    from bulkinvoke.run.runner import resume as resume_run

    _continue_run(
        partial(resume_run, run_dir, wait=wait, mirror=_mirror_settings(ledger_uri)),
        "resume",
        timeout,
        notifications_queue,
        region,
        profile,
        endpoint_url,
        s3_endpoint_url,
        transport,
        as_json,
        quiet,
    )


@app.command(
    short_help="Record the results that have appeared since.",
    epilog=EXIT_CODES_HELP + " Without --wait, 3 means results are still outstanding.",
)
def collect(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="The run directory.")],
    wait: Annotated[
        bool, typer.Option(help="Keep looking until every sent item has a result.")
    ] = False,
    timeout: TimeoutOption = None,
    notifications_queue: NotificationsOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    s3_endpoint_url: S3EndpointUrlOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Record the outputs and failures that have appeared since; sends nothing."""
    from bulkinvoke.run.runner import collect as collect_results

    _continue_run(
        partial(collect_results, run_dir, wait=wait),
        "collect",
        timeout,
        notifications_queue,
        region,
        profile,
        endpoint_url,
        s3_endpoint_url,
        None,
        as_json,
        quiet,
    )


@app.command(
    short_help="Send failed or expired items again.",
    epilog=EXIT_CODES_HELP,
)
def retry(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="The run directory.")],
    failed: Annotated[bool, typer.Option("--failed", help="Retry failed items.")] = False,
    expired: Annotated[bool, typer.Option("--expired", help="Retry expired items.")] = False,
    rejected: Annotated[bool, typer.Option("--rejected", help="Retry rejected items.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for every output or failure.")] = True,
    timeout: TimeoutOption = None,
    notifications_queue: NotificationsOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    s3_endpoint_url: S3EndpointUrlOption = None,
    transport: TransportOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Send failed/expired/rejected items again as a new attempt with a new inference ID
    (default: --failed --expired), with the run's saved options."""
    from bulkinvoke.run.runner import retry as retry_run
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
        partial(retry_run, run_dir, chosen, wait=wait),
        "resume",
        timeout,
        notifications_queue,
        region,
        profile,
        endpoint_url,
        s3_endpoint_url,
        transport,
        as_json,
        quiet,
    )


@app.command()
def status(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="The run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Counts by state, from the ledger alone (no AWS calls)."""
    from bulkinvoke.reports.summary import render_status, run_status

    with _expected_errors():
        summary = run_status(run_dir)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        render_status(out, summary)


@app.command(short_help="Write the results as Parquet, CSV or JSON Lines.")
def export(
    run_dirs: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN_DIR...",
            help="The run directory; or several, or s3:// ledger prefixes (--ledger-uri), whose "
            "runs (the shards of one run) export as one table, sorted by row.",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="FILE.parquet, FILE.csv or FILE.jsonl.")
    ],
    state: Annotated[
        list[str] | None, typer.Option(help="Only items in this state (repeatable).")
    ] = None,
    with_output: Annotated[
        bool,
        typer.Option(
            "--with-output",
            help="Add each succeeded item's output body from S3 (its first 1 MiB): columns "
            "output, output_encoding (utf-8 or base64), output_truncated, output_error.",
        ),
    ] = False,
    expand_json: Annotated[
        bool,
        typer.Option(
            "--expand-json",
            help="Also spread outputs that are JSON objects into output.<key> columns "
            "(nested values as JSON text); implies --with-output.",
        ),
    ] = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    s3_endpoint_url: S3EndpointUrlOption = None,
) -> None:
    """Write one row per manifest row: its state, IDs, locations, error, timings, and with
    --with-output its output. The file appears only once complete."""
    from bulkinvoke.export.table import ExportStopped, export_table
    from bulkinvoke.scale.union import local_runs

    aws = _aws_overrides(region, profile, None, s3_endpoint_url)
    with _expected_errors(), local_runs(run_dirs, aws) as runs:
        try:
            result = export_table(
                runs[0] if len(runs) == 1 else runs,
                output,
                states=state or None,
                with_output=with_output,
                expand_json=expand_json,
                aws=aws,
            )
        except ExportStopped as error:
            fail(f"{error}; nothing was written", ExitCode.STOPPED)
    message = f"wrote {result.rows} rows to {output}"
    if with_output or expand_json:
        message += (
            f": {result.outputs} outputs ({result.truncated} cut at 1 MiB), "
            f"{result.output_errors} could not be read"
        )
    if expand_json:
        message += f", {result.json_columns} output.<key> columns"
    out.print(message, highlight=False, markup=False, soft_wrap=True)
    if result.json_columns_capped:
        err.print(
            f"note: only the first {result.json_columns} distinct JSON keys became columns; "
            "the other keys are only in the output column",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def main() -> None:
    app()
