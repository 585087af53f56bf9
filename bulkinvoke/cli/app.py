"""The ``bulkinvoke`` command: the commands of ``cli.submit``, ``cli.run``, ``cli.report``,
``cli.export`` and ``cli.emulator`` under one typer application."""

from __future__ import annotations

import os
import sys

import typer

from bulkinvoke.cli import run
from bulkinvoke.cli.emulator import emulator_command
from bulkinvoke.cli.export import export_command
from bulkinvoke.cli.report import report_command, status_command
from bulkinvoke.cli.submit import submit
from bulkinvoke.exit_codes import EXIT_CODES_HELP

app = typer.Typer(
    name="bulkinvoke",
    help="Run a whole S3 dataset through a SageMaker asynchronous inference endpoint, "
    "resumably, with a Parquet ledger. " + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command(
    "submit",
    short_help="Send every row of a manifest and wait for the results.",
    epilog=EXIT_CODES_HELP,
)(submit)
app.command("resume", short_help="Continue an interrupted run.", epilog=EXIT_CODES_HELP)(run.resume)
app.command(
    "collect",
    short_help="Record the results that have appeared since.",
    epilog=EXIT_CODES_HELP + " Without --wait, 3 means results are still outstanding.",
)(run.collect)
app.command("retry", short_help="Send failed or expired items again.", epilog=EXIT_CODES_HELP)(
    run.retry
)
app.command("status")(status_command)
app.command("export", short_help="Write the results as Parquet, CSV or JSON Lines.")(export_command)
app.command(
    "emulator", help="Serve a local async endpoint plus S3/SNS/SQS/CloudWatch on 127.0.0.1."
)(emulator_command)
app.command("report", help="Report on a run: counts, timings, latency, failures, charts.")(
    report_command
)


def main() -> None:
    try:
        app()
        code = 0
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            code = 1
    # Every command has closed what it opened by now (ledgers, thread pools, the --local
    # emulator): a plain exit would spend another 0.15 s tearing down pandas, pyarrow and
    # botocore, a fixed cost on every short run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
