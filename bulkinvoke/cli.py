"""The ``bulkinvoke`` command: each command parses its options, calls one library function and
renders what it returns. Expected failures become a one-line message and a documented exit code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from bulkinvoke.cli_emulator import emulator_command
from bulkinvoke.cli_report import report_command
from bulkinvoke.exit_codes import EXIT_CODES_HELP, ExitCode

if TYPE_CHECKING:
    from bulkinvoke.aws import AwsSettings
    from bulkinvoke.events import Subscribers
    from bulkinvoke.runner import DryRun, RunResult

app = typer.Typer(
    name="bulkinvoke",
    help="Run a whole S3 dataset through a SageMaker asynchronous inference endpoint, "
    "resumably, with a Parquet ledger. " + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("emulator", help="Serve a local async endpoint plus S3/SNS/SQS on 127.0.0.1.")(
    emulator_command
)
app.command("report", help="Report on a run: counts, timings, latency, failures, charts.")(
    report_command
)
out = Console()
err = Console(stderr=True)

MAX_PROBLEMS_SHOWN = 20


def _fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(int(code))


@contextmanager
def _expected_errors() -> Iterator[None]:
    """Turn the failures a user can cause into a message and exit 2, never a traceback."""
    from bulkinvoke.aws import AwsConfigError
    from bulkinvoke.export import ExportError
    from bulkinvoke.ledger_errors import LedgerError
    from bulkinvoke.manifest import ManifestError
    from bulkinvoke.runner import InvalidManifest, RunError

    try:
        yield
    except InvalidManifest as error:
        problems = error.manifest.problems
        for problem in problems[:MAX_PROBLEMS_SHOWN]:
            err.print(str(problem), highlight=False, markup=False, soft_wrap=True)
        if len(problems) > MAX_PROBLEMS_SHOWN:
            err.print(f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more invalid rows")
        _fail(f"{error} (use --skip-invalid to record them as rejected and go on)")
    except (ManifestError, RunError, AwsConfigError, LedgerError, ExportError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        _fail("interrupted", ExitCode.INTERRUPTED)


def _subscribers(stack: ExitStack, quiet: bool) -> Subscribers:
    from bulkinvoke.events import Subscribers
    from bulkinvoke.progress import LiveProgress, LogProgress

    if quiet:
        return Subscribers()
    if err.is_terminal:
        return Subscribers([stack.enter_context(LiveProgress(err))])
    return Subscribers([stack.enter_context(LogProgress())])


def _render_result(result: RunResult, as_json: bool) -> NoReturn:
    from bulkinvoke.summary import result_summary

    summary = result_summary(result)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        from bulkinvoke.report import build_report
        from bulkinvoke.report_render import render_text
        from bulkinvoke.summary import render_summary

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


@app.command(epilog=EXIT_CODES_HELP)
def submit(
    manifest: Annotated[
        str,
        typer.Argument(
            help="CSV/TSV, text, JSON Lines, Parquet or ManifestFile JSON, "
            "or an s3://bucket/prefix/ to take every object under it."
        ),
    ],
    endpoint: Annotated[str, typer.Option(help="Name of the async inference endpoint.")],
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the ledger lives [default: bulkinvoke-runs/<manifest>-<endpoint>]."
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(min=0.001, help="Most calls per second (adapts down on throttling)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Most calls in progress at once.")] = 16,
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
            "[default: its TTL + invocation timeout + 300].",
        ),
    ] = None,
    local: Annotated[
        bool, typer.Option(help="Use the embedded local emulator: no AWS account needed.")
    ] = False,
    local_inputs: Annotated[
        Path | None,
        typer.Option(
            help="With --local: folder of input files to upload "
            "[default: <manifest stem>-inputs/ beside the manifest]."
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
    notifications_queue: NotificationsOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Submit every row of MANIFEST to an async endpoint, record it, and wait for the results."""
    from bulkinvoke.aws import AwsSettings
    from bulkinvoke.options import RequestOptions, check_output_path_extension
    from bulkinvoke.runner import RunOptions

    request = RequestOptions(
        content_type, accept, custom_attributes, request_ttl_seconds, invocation_timeout_seconds
    )
    problems = request.problems()
    if output_path_extension is not None:
        problems.append(check_output_path_extension(output_path_extension) or "")
    if any(problems):
        _fail("; ".join(p for p in problems if p))
    aws = AwsSettings(region, profile, endpoint_url, s3_endpoint_url, expected_bucket_owner)
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
    with ExitStack() as stack, _expected_errors():
        if local:
            from dataclasses import replace

            from bulkinvoke.local import local_endpoint

            settings = stack.enter_context(
                local_endpoint(manifest, endpoint, inputs_dir=local_inputs)
            )
            options = replace(options, aws=settings)
        if dry_run:
            from bulkinvoke.runner import dry_run as plan_run

            _render_dry_run(
                plan_run(manifest, options, run_dir=run_dir, skip_invalid=skip_invalid), as_json
            )
            return
        from bulkinvoke.runner import submit as submit_run

        result = submit_run(
            manifest,
            options,
            run_dir=run_dir,
            wait=wait,
            timeout=timeout,
            skip_invalid=skip_invalid,
            notifications_queue=notifications_queue,
            subscribers=_subscribers(stack, quiet or as_json),
        )
    _render_result(result, as_json)


RegionOption = Annotated[str | None, typer.Option(help="AWS region [default: the run's].")]
ProfileOption = Annotated[str | None, typer.Option(help="AWS profile [default: the run's].")]
EndpointUrlOption = Annotated[
    str | None, typer.Option(help="sagemaker-runtime endpoint URL [default: the run's].")
]
S3EndpointUrlOption = Annotated[
    str | None, typer.Option(help="S3 endpoint URL [default: the run's].")
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
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


def _aws_overrides(
    region: str | None, profile: str | None, endpoint_url: str | None, s3_endpoint_url: str | None
) -> AwsSettings:
    from bulkinvoke.aws import AwsSettings

    return AwsSettings(region, profile, endpoint_url, s3_endpoint_url)


@app.command(epilog=EXIT_CODES_HELP)
def resume(
    run_dir: Annotated[Path, typer.Argument(help="The run directory to continue.")],
    wait: Annotated[bool, typer.Option(help="Wait for every output or failure.")] = True,
    timeout: TimeoutOption = None,
    notifications_queue: NotificationsOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    endpoint_url: EndpointUrlOption = None,
    s3_endpoint_url: S3EndpointUrlOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Continue an interrupted run: nothing is lost, nothing finished is sent again."""
    from bulkinvoke.runner import resume as resume_run

    with ExitStack() as stack, _expected_errors():
        result = resume_run(
            run_dir,
            wait=wait,
            timeout=timeout,
            aws=_aws_overrides(region, profile, endpoint_url, s3_endpoint_url),
            notifications_queue=notifications_queue,
            subscribers=_subscribers(stack, quiet or as_json),
        )
    _render_result(result, as_json)


@app.command(epilog=EXIT_CODES_HELP + " Without --wait, 3 means results are still outstanding.")
def collect(
    run_dir: Annotated[Path, typer.Argument(help="The run directory.")],
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
    from bulkinvoke.runner import collect as collect_results

    with ExitStack() as stack, _expected_errors():
        result = collect_results(
            run_dir,
            wait=wait,
            timeout=timeout,
            aws=_aws_overrides(region, profile, endpoint_url, s3_endpoint_url),
            notifications_queue=notifications_queue,
            subscribers=_subscribers(stack, quiet or as_json),
        )
    _render_result(result, as_json)


@app.command(epilog=EXIT_CODES_HELP)
def retry(
    run_dir: Annotated[Path, typer.Argument(help="The run directory.")],
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
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Send failed/expired/rejected items again as a new attempt with a new inference ID
    (default: --failed --expired), with the run's saved options."""
    from bulkinvoke.runner import retry as retry_run
    from bulkinvoke.states import State

    chosen = tuple(
        state
        for state, wanted in ((State.FAILED, failed), (State.EXPIRED, expired),
                              (State.REJECTED, rejected))
        if wanted
    ) or (State.FAILED, State.EXPIRED)
    with ExitStack() as stack, _expected_errors():
        result = retry_run(
            run_dir,
            chosen,
            wait=wait,
            timeout=timeout,
            aws=_aws_overrides(region, profile, endpoint_url, s3_endpoint_url),
            notifications_queue=notifications_queue,
            subscribers=_subscribers(stack, quiet or as_json),
        )
    _render_result(result, as_json)


@app.command()
def status(
    run_dir: Annotated[Path, typer.Argument(help="The run directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Counts by state, from the ledger alone (no AWS calls)."""
    from bulkinvoke.summary import render_status, run_status

    with _expected_errors():
        summary = run_status(run_dir)
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        render_status(out, summary)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="The run directory.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="FILE.parquet, FILE.csv or FILE.jsonl.")
    ],
    state: Annotated[
        list[str] | None, typer.Option(help="Only items in this state (repeatable).")
    ] = None,
) -> None:
    """Write one row per manifest row: its state, IDs, locations, error, timings."""
    from bulkinvoke.export import export_table

    with _expected_errors():
        written = export_table(run_dir, output, states=state or None)
    out.print(f"wrote {written} rows to {output}")


def main() -> None:
    app()
