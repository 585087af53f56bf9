"""One entry point for a run: plan it, submit, wait, resume.

``submit`` turns a manifest into a run directory (or continues the one that is there) and hands
the work to the :class:`~bulkinvoke.run.engine.Engine`; ``resume`` continues a run from its
ledger with the options it was started with. Both return a :class:`RunResult`; neither prints
anything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.calls.aws import AwsSettings, make_clients
from bulkinvoke.calls.endpoint import EndpointDescription
from bulkinvoke.errors import InvalidManifest, RunError
from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.ledger.files import CONFIG_NAME, read_config
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.run.definition import (
    RunOptions,
    check_options,
    check_same_run,
    check_shard,
    default_run_dir,
    open_or_create,
    parse_max_failures,
    read_run_manifest,
    stage_run_payloads,
)
from bulkinvoke.run.doubt import InDoubt
from bulkinvoke.run.endpoint import look_at_endpoint
from bulkinvoke.run.estimate import Estimate, estimate, measured_seconds_per_item
from bulkinvoke.run.in_doubt import look_for_late_results
from bulkinvoke.run.outcome import Outcome, RunResult
from bulkinvoke.run.session import (
    Session,
    make_collector,
    new_attempts,
    open_run,
    resumed_session,
    run_session,
)
from bulkinvoke.run.staging import StagingCount
from bulkinvoke.run.work import CallFactory, load_run_state
from bulkinvoke.s3uri import bucket_owner_args
from bulkinvoke.scale.mirror import open_mirror
from bulkinvoke.scale.mirror_settings import MirrorSettings, saved_settings
from bulkinvoke.scale.shards import Shard
from bulkinvoke.states import UNSUCCESSFUL_STATES, State

# Names the CLI, tests and library users import from here.
__all__ = [
    "DryRun",
    "InDoubt",
    "InvalidManifest",
    "RunError",
    "RunOptions",
    "RunResult",
    "collect",
    "default_run_dir",
    "dry_run",
    "parse_max_failures",
    "resume",
    "retry",
    "submit",
]


@dataclass(frozen=True)
class DryRun:
    run_dir: Path
    total: int
    already_done: int
    to_send: int
    first_ids: list[tuple[str, str]]
    estimated_s: float | None
    duplicates: int
    invalid: int
    # None when the endpoint was not checked (--no-check-endpoint, or it could not be).
    endpoint: EndpointDescription | None = None
    # The endpoint's time over the items to send, and its instances' cost (run/estimate.py).
    processing: Estimate | None = None
    # With --stage: the payloads to stage, and how many are there already.
    staging: StagingCount | None = None


def submit(
    manifest_source: str,
    options: RunOptions,
    *,
    run_dir: Path | None = None,
    wait: bool = True,
    timeout: float | None = None,
    skip_invalid: bool = False,
    notifications_queue: str | None = None,
    subscribers: Subscribers | None = None,
    shard: Shard | None = None,
    mirror: MirrorSettings | None = None,
    local: bool = False,
    in_doubt: InDoubt = InDoubt.RESEND,
) -> RunResult:
    """Run every row of a manifest (or of its ``shard``) through the endpoint, or continue the
    run already there. With ``mirror`` (else the one in run.json), the ledger is kept in S3 too
    (each shard under its own ``shard-K-of-N/``), and a run only there is continued from it.
    ``local``: the endpoint is ``--local``'s emulator, which ends with its process, so the
    attempts an earlier session left awaiting a result are sent again, as new attempts (and
    those in doubt at once, whatever ``in_doubt`` says: no result of theirs can come).
    ``in_doubt``: what a continued run does with attempts a crash left in doubt (see
    ``bulkinvoke.run.in_doubt``)."""
    started = time.monotonic()
    check_options(options)
    run_dir = run_dir or default_run_dir(manifest_source, options.endpoint, shard)
    existing = read_config(run_dir / CONFIG_NAME) if Ledger.exists(run_dir) else None
    if existing is not None:
        check_shard(existing, shard)
    clients = make_clients(options.aws, max_connections=options.most_calls_in_progress + 4)
    subscribers = subscribers or Subscribers()
    manifest, staged = read_run_manifest(
        manifest_source, clients.s3, options, skip_invalid=skip_invalid, shard=shard
    )
    if existing is not None:
        check_same_run(existing, manifest, options, shard)
    # Before anything is staged or written: an endpoint that cannot take the calls costs no
    # upload and leaves no run behind.
    described = look_at_endpoint(clients, options, subscribers)
    if staged is not None:
        stage_run_payloads(staged, manifest, options, clients.s3, subscribers, upload=True)
    mirror = mirror.for_shard(shard) if mirror else saved_settings(run_dir)
    owner_args = bucket_owner_args(options.aws.expected_bucket_owner)

    def check_mirrored_run(config: dict[str, Any]) -> None:
        check_same_run(config, manifest, options, shard)

    with open_mirror(
        run_dir, mirror, clients.s3, subscribers, owner_args, check_mirrored_run
    ) as copy:
        ledger = open_or_create(run_dir, manifest, options, shard, mirror, local=local)
        session = Session(
            options,
            clients,
            started,
            wait,
            timeout,
            notifications_queue,
            subscribers,
            copy,
            InDoubt.RESEND if local else in_doubt,
            looked_at_endpoint=True,
            described=described,
        )
        with ledger:
            if local:
                factory = CallFactory(ledger.plan(), options)
                lost = new_attempts(ledger, factory, (State.SUBMITTED,))
                if lost:
                    subscribers.notice(
                        NoticeLevel.INFO,
                        f"{lost} item(s) sent to an endpoint that is gone will be sent again",
                    )
            return run_session(ledger, session, duplicates=len(manifest.duplicates))


def resume(
    run_dir: Path,
    *,
    wait: bool = True,
    timeout: float | None = None,
    aws: AwsSettings | None = None,
    notifications_queue: str | None = None,
    subscribers: Subscribers | None = None,
    mirror: MirrorSettings | None = None,
    in_doubt: InDoubt = InDoubt.RESEND,
) -> RunResult:
    """Continue a run from its ledger, with the options it was started with. With ``mirror``
    (else the one in run.json) the ledger is kept in S3 too; an empty or missing ``run_dir`` is
    first filled from it (the run moves to this machine). ``in_doubt``: what to do with the
    attempts a crash left in doubt (see ``bulkinvoke.run.in_doubt``)."""
    started = time.monotonic()
    subscribers = subscribers or Subscribers()
    with open_run(run_dir, aws, mirror, subscribers) as (ledger, copy):
        session = resumed_session(
            ledger, aws, started, wait, timeout, notifications_queue, subscribers, copy, in_doubt
        )
        return run_session(ledger, session)


def collect(
    run_dir: Path,
    *,
    wait: bool = False,
    timeout: float | None = None,
    aws: AwsSettings | None = None,
    notifications_queue: str | None = None,
    subscribers: Subscribers | None = None,
) -> RunResult:
    """Record the results that have appeared in S3 (or the queue) since; send nothing."""
    started = time.monotonic()
    subscribers = subscribers or Subscribers()
    with open_run(run_dir, aws, None, subscribers) as (ledger, copy):
        session = resumed_session(
            ledger, aws, started, wait, timeout, notifications_queue, subscribers, copy
        )
        result = run_session(ledger, session, send=False)
    if result.outcome is Outcome.ACCEPTED:
        result = replace(result, outcome=Outcome.INCOMPLETE)
    return result


def retry(
    run_dir: Path,
    states: tuple[State, ...] = (State.FAILED, State.EXPIRED),
    *,
    wait: bool = True,
    timeout: float | None = None,
    aws: AwsSettings | None = None,
    notifications_queue: str | None = None,
    subscribers: Subscribers | None = None,
    in_doubt: InDoubt = InDoubt.RESEND,
) -> RunResult:
    """Send the items whose latest attempt ended in ``states`` again, as a new attempt each.

    A new attempt has a new deterministic inference ID (and so a new output location); the
    earlier attempts' records stay in the ledger. Rows refused by manifest validation cannot be
    sent and are left as they are. Expired attempts are first looked for once more: a result
    that came late is recorded as what it became.
    """
    unknown = [state for state in states if state not in UNSUCCESSFUL_STATES]
    if unknown:
        raise RunError(f"only failed, expired or rejected items can be retried, not {unknown[0]}")
    started = time.monotonic()
    subscribers = subscribers or Subscribers()
    with open_run(run_dir, aws, None, subscribers) as (ledger, copy):
        session = resumed_session(
            ledger, aws, started, wait, timeout, notifications_queue, subscribers, copy, in_doubt
        )
        factory = CallFactory(ledger.plan(), session.options)
        # First what came late: a late success is not sent again, a late failure is retried
        # as a failure. The counts are read first: the whole state only when there is a look.
        if ledger.counts()[State.EXPIRED]:
            state = load_run_state(ledger, factory)
            look_for_late_results(ledger, state, make_collector(session), session.subscribers)
        again = new_attempts(ledger, factory, states)
        session.subscribers.notice(NoticeLevel.INFO, f"{again} item(s) will be sent again")
        return run_session(ledger, session)


def dry_run(
    manifest_source: str,
    options: RunOptions,
    *,
    run_dir: Path | None = None,
    skip_invalid: bool = False,
    s3_client: S3Client | None = None,
    shard: Shard | None = None,
    price_per_instance_hour: float | None = None,
    subscribers: Subscribers | None = None,
) -> DryRun:
    """What ``submit`` would do, sending nothing and writing nothing; the endpoint is described
    (and refused) as ``submit`` would before its first call."""
    check_options(options)
    run_dir = run_dir or default_run_dir(manifest_source, options.endpoint, shard)
    clients = make_clients(options.aws)
    if s3_client is None and (manifest_source.startswith("s3://") or options.stage):
        s3_client = clients.s3
    subscribers = subscribers or Subscribers()
    manifest, staged = read_run_manifest(
        manifest_source, s3_client, options, skip_invalid=skip_invalid, shard=shard
    )
    described = look_at_endpoint(clients, options, subscribers)
    staging = None
    if staged is not None and s3_client is not None:
        staging = stage_run_payloads(
            staged, manifest, options, s3_client, subscribers, upload=False
        )
    factory = CallFactory(manifest.table, options)
    done = 0
    if Ledger.exists(run_dir):
        with Ledger.open(run_dir, writable=False) as ledger:
            # What submit would refuse, the dry run refuses too, rather than count another
            # run's items as done.
            check_same_run(ledger.config, manifest, options, shard)
            counts = ledger.counts()
        done = sum(n for state, n in counts.items() if state.is_final)
    total = manifest.table.num_rows
    to_send = max(total - done, 0)
    first = [(call.input_location, call.inference_id) for call in factory.first_calls(5)]
    sending_s = to_send / options.rate if options.rate else None
    return DryRun(
        run_dir,
        total,
        done,
        to_send,
        first,
        sending_s,
        len(manifest.duplicates),
        len(manifest.problems),
        described,
        estimate(
            to_send,
            described,
            options.seconds_per_item,
            price_per_instance_hour,
            measured_seconds_per_item(clients, options, described, subscribers),
        ),
        staging,
    )
