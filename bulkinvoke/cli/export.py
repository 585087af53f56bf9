"""``bulkinvoke export``: the ledger as a table file, with the outputs if asked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bulkinvoke.cli.errors import err, expected_errors
from bulkinvoke.cli.options import (
    CaBundleOption,
    NoVerifySslOption,
    ProfileOption,
    RegionOption,
    S3EndpointUrlOption,
    aws_overrides,
)
from bulkinvoke.cli.render import out


def export_command(
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
    ca_bundle: CaBundleOption = None,
    no_verify_ssl: NoVerifySslOption = False,
) -> None:
    """Write one row per manifest row: its state, IDs, locations, error, timings, and with
    --with-output its output. The file appears only once complete."""
    from bulkinvoke.export.table import export_table
    from bulkinvoke.scale.union import local_runs

    aws = aws_overrides(region, profile, None, s3_endpoint_url, None, ca_bundle, no_verify_ssl)
    if no_verify_ssl:
        from bulkinvoke.calls.aws import NO_VERIFY_WARNING

        err.print(f"warning: {NO_VERIFY_WARNING}", highlight=False, markup=False)
    with expected_errors(), local_runs(run_dirs, aws) as runs:
        result = export_table(
            runs[0] if len(runs) == 1 else runs,
            output,
            states=state or None,
            with_output=with_output,
            expand_json=expand_json,
            aws=aws,
        )
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
