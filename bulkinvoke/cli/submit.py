"""``bulkinvoke submit``: parse the options of a run, then call ``bulkinvoke.run.runner.submit``
(or ``dry_run``) and render the result, as the other run commands do (``cli.run``)."""

from __future__ import annotations

import os
import shlex
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from bulkinvoke.cli.errors import expected_errors
from bulkinvoke.cli.options import (
    CaBundleOption,
    InDoubtOption,
    JsonOption,
    LedgerUriOption,
    NotificationsOption,
    NoVerifySslOption,
    QuietOption,
    TimeoutOption,
    TransportOption,
    WaitOption,
)
from bulkinvoke.cli.render import out, render_dry_run
from bulkinvoke.cli.run import RunDisplay, mirror_settings
from bulkinvoke.run.doubt import InDoubt


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
        int | None,
        typer.Option(
            min=1,
            max=1024,
            help="Most calls in progress at once (at most 1024). Default: 16; with --rate, as "
            "many as the rate takes at the latency measured as the run goes (rate x latency, "
            "Little's law), at most 256.",
        ),
    ] = None,
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Most items accepted by the endpoint but not yet finished. Default: none, or "
            "with --seconds-per-item and an endpoint that reports its concurrency, half of what "
            "it can start within the request TTL.",
        ),
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option(
            help="MANIFEST is a table of records (JSON Lines or Parquet): put each record's "
            "payload in S3 under this s3://bucket/prefix/ at <sha256>.<ext> (nothing uploaded "
            "twice, identical payloads one object) and send those. See --payload-column.",
        ),
    ] = None,
    payload_column: Annotated[
        str | None,
        typer.Option(
            help="With --stage: the column (Parquet) or key (JSON Lines) holding each payload; "
            "the other columns come back in the export. JSON Lines without it: each line whole.",
        ),
    ] = None,
    check_endpoint: Annotated[
        bool,
        typer.Option(
            help="Describe the endpoint (DescribeEndpoint) before sending, and refuse one that "
            "does not exist, is not InService or is not asynchronous (exit 4). Kept for "
            "resume and retry.",
        ),
    ] = True,
    seconds_per_item: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="How long the model takes over one item: the default --max-in-flight, and the "
            "dry run's time (and with --price-per-instance-hour, cost) estimate.",
        ),
    ] = None,
    endpoint_metrics_every: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between two reads of the endpoint's CloudWatch backlog "
            "(ApproximateBacklogSizePerInstance, HasBacklogWithoutCapacity), shown with the "
            "progress; 0: never read. Needs --check-endpoint.",
        ),
    ] = 60.0,
    price_per_instance_hour: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="With --dry-run: the price of one of the endpoint's instances per hour, for a "
            "cost estimate beside the time estimate (from --seconds-per-item or the endpoint's "
            "ModelLatency); no price table is built in.",
        ),
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
    wait: WaitOption = True,
    timeout: TimeoutOption = None,
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
    ca_bundle: CaBundleOption = None,
    no_verify_ssl: NoVerifySslOption = False,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Run only shard K of N: K/N, K with --shards N, or auto (K from "
            "AWS_BATCH_JOB_ARRAY_INDEX or Kubernetes' JOB_COMPLETION_INDEX, N from --shards "
            "or AWS_BATCH_JOB_ARRAY_SIZE). A row's "
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
    in_doubt: InDoubtOption = InDoubt.RESEND,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Submit every row of MANIFEST to an async endpoint, record it, and wait for the results."""
    from bulkinvoke.calls.aws import AwsSettings
    from bulkinvoke.request_options import RequestOptions
    from bulkinvoke.run import runner
    from bulkinvoke.scale.shards import resolve_shard

    display = RunDisplay(as_json, quiet)
    if price_per_instance_hour is not None and not dry_run:
        raise typer.BadParameter(
            "it prices the estimate of --dry-run", param_hint="--price-per-instance-hour"
        )
    with expected_errors():
        chosen_shard = resolve_shard(shard, shards, os.environ)
        mirror = mirror_settings(ledger_uri, ledger_lease_seconds)
    options = runner.RunOptions(
        endpoint=endpoint,
        request=RequestOptions(
            content_type, accept, custom_attributes, request_ttl_seconds, invocation_timeout_seconds
        ),
        output_path_extension=output_path_extension,
        id_namespace=id_namespace,
        rate=rate,
        concurrency=concurrency,
        max_in_flight=max_in_flight,
        max_failures=max_failures,
        check_endpoint=check_endpoint,
        seconds_per_item=seconds_per_item,
        endpoint_metrics_seconds=endpoint_metrics_every,
        stage=stage,
        payload_column=payload_column,
        expire_after=expire_after,
        aws=AwsSettings(
            region=region,
            profile=profile,
            endpoint_url=endpoint_url,
            s3_endpoint_url=s3_endpoint_url,
            expected_bucket_owner=expected_bucket_owner,
            call_timeout=call_timeout,
            transport=transport,
            ca_bundle=ca_bundle,
            verify_ssl=False if no_verify_ssl else None,
        ),
    ).with_rate_shared_by(shards)
    run_dir = run_dir or runner.default_run_dir(manifest, endpoint, chosen_shard)
    go_on = (
        "run the same command again (the --local emulator ends with it)"
        if local
        else f"continue with `bulkinvoke resume {shlex.quote(str(run_dir))}`"
    )
    with ExitStack() as stack, expected_errors(go_on):
        if local:
            from dataclasses import replace

            from bulkinvoke.run.local import local_endpoint

            settings = stack.enter_context(
                local_endpoint(
                    manifest,
                    endpoint,
                    inputs_dir=local_inputs,
                    expected_bucket_owner=expected_bucket_owner,
                    stage=stage,
                )
            )
            options = replace(options, aws=settings)
        if dry_run:
            from bulkinvoke.cli.progress import WarningsOnly
            from bulkinvoke.events import Subscribers

            plan = runner.dry_run(
                manifest,
                options,
                run_dir=run_dir,
                skip_invalid=skip_invalid,
                shard=chosen_shard,
                price_per_instance_hour=price_per_instance_hour,
                # The endpoint's facts are in the plan shown; only warnings go to stderr.
                subscribers=Subscribers([WarningsOnly()]),
            )
            render_dry_run(out, plan, as_json)
            return
        result = runner.submit(
            manifest,
            options,
            run_dir=run_dir,
            wait=wait,
            timeout=timeout,
            skip_invalid=skip_invalid,
            notifications_queue=notifications_queue,
            subscribers=display.subscribers(stack),
            shard=chosen_shard,
            mirror=mirror,
            local=local,
            in_doubt=in_doubt,
        )
    display.result(result)
