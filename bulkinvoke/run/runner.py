"""One entry point for a run: plan it, submit, wait, resume.

``submit`` turns a manifest into a run directory (or continues the one that is there) and hands
the work to the :class:`~bulkinvoke.run.engine.Engine`; ``resume`` continues a run from its
ledger with the options it was started with. Both return a :class:`RunResult`; neither prints
anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bulkinvoke.calls.aws import AwsSettings, Transport, make_clients
from bulkinvoke.calls.invoker import Call, Invoker
from bulkinvoke.calls.limiter import RateLimiter
from bulkinvoke.calls.retry import RetryPolicy
from bulkinvoke.calls.transport import DirectRuntimeClient
from bulkinvoke.errors import InvalidManifest, RunError
from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.exit_codes import ExitCode
from bulkinvoke.ledger.files import CONFIG_NAME, read_config
from bulkinvoke.ledger.store import Event, Ledger
from bulkinvoke.results.collector import Collector
from bulkinvoke.results.notifications import NotificationQueue
from bulkinvoke.run.definition import (
    RunOptions,
    check_options,
    check_same_run,
    check_shard,
    default_run_dir,
    local_run_message,
    open_or_create,
    parse_max_failures,
    read_run_manifest,
    record_rejections,
)
from bulkinvoke.run.engine import Engine, EngineResult, EngineSettings, Outcome
from bulkinvoke.run.in_doubt import look_for_late_results, settle_in_doubt
from bulkinvoke.run.work import CallFactory, RunState, invalid_reasons, load_run_state
from bulkinvoke.s3uri import bucket_owner_args
from bulkinvoke.scale.mirror import LedgerMirror, MirrorSettings, open_mirror, saved_settings
from bulkinvoke.scale.mirror_files import mirror_client
from bulkinvoke.scale.shards import Shard
from bulkinvoke.states import UNSUCCESSFUL_STATES, State

# Names the CLI, tests and library users import from here.
__all__ = [
    "DryRun",
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
class RunResult:
    run_dir: Path
    outcome: Outcome
    counts: dict[State, int]
    total: int
    elapsed_s: float
    submitted: int = 0
    stop_reason: str | None = None
    duplicates: int = 0
    s3_requests: int = 0
    earlier_results: int = 0
    # Made with --local: its endpoint ended with the command, so resume and retry cannot reach it.
    local: bool = False

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome is Outcome.STOPPED:
            return ExitCode.STOPPED
        if self.outcome is Outcome.INCOMPLETE:
            return ExitCode.INCOMPLETE
        if any(self.counts.get(state) for state in UNSUCCESSFUL_STATES):
            return ExitCode.SOME_FAILED
        return ExitCode.OK


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
) -> RunResult:
    """Run every row of a manifest (or of its ``shard``) through the endpoint, or continue the
    run already there. With ``mirror`` (else the one in run.json), the ledger is kept in S3 too
    (each shard under its own ``shard-K-of-N/``), and a run only there is continued from it.
    ``local``: the endpoint is ``--local``'s emulator, which ends with its process, so the
    attempts an earlier session left awaiting a result are sent again, as new attempts."""
    started = time.monotonic()
    check_options(options)
    run_dir = run_dir or default_run_dir(manifest_source, options.endpoint, shard)
    if Ledger.exists(run_dir):
        check_shard(read_config(run_dir / CONFIG_NAME), shard)
    clients = make_clients(options.aws, max_connections=options.concurrency + 4)
    manifest = read_run_manifest(
        manifest_source, clients.s3, options, skip_invalid=skip_invalid, shard=shard
    )
    subscribers = subscribers or Subscribers()
    mirror = mirror.for_shard(shard) if mirror else saved_settings(run_dir)
    owner_args = bucket_owner_args(options.aws.expected_bucket_owner)

    def check_mirrored_run(config: dict[str, Any]) -> None:
        check_same_run(config, manifest, options, shard)

    with open_mirror(
        run_dir, mirror, clients.s3, subscribers, owner_args, check_mirrored_run
    ) as copy:
        ledger = open_or_create(run_dir, manifest, options, shard, mirror, local=local)
        session = _Session(
            options, clients, started, wait, timeout, notifications_queue, subscribers, copy
        )
        with ledger:
            if local:
                factory = CallFactory(ledger.plan(), options)
                lost = _new_attempts(ledger, factory, (State.SUBMITTED,))
                if lost:
                    subscribers.notice(
                        NoticeLevel.INFO,
                        f"{lost} item(s) sent to an endpoint that is gone will be sent again",
                    )
            return _run(ledger, session, duplicates=len(manifest.duplicates))


def resume(
    run_dir: Path,
    *,
    wait: bool = True,
    timeout: float | None = None,
    aws: AwsSettings | None = None,
    notifications_queue: str | None = None,
    subscribers: Subscribers | None = None,
    mirror: MirrorSettings | None = None,
) -> RunResult:
    """Continue a run from its ledger, with the options it was started with. With ``mirror``
    (else the one in run.json) the ledger is kept in S3 too; an empty or missing ``run_dir`` is
    first filled from it (the run moves to this machine)."""
    started = time.monotonic()
    subscribers = subscribers or Subscribers()
    with _open_run(run_dir, aws, mirror, subscribers) as (ledger, copy):
        session = _resumed_session(
            ledger, aws, started, wait, timeout, notifications_queue, subscribers, copy
        )
        return _run(ledger, session)


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
    with _open_run(run_dir, aws, None, subscribers) as (ledger, copy):
        session = _resumed_session(
            ledger, aws, started, wait, timeout, notifications_queue, subscribers, copy
        )
        result = _run(ledger, session, send=False)
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
    with _open_run(run_dir, aws, None, subscribers) as (ledger, copy):
        session = _resumed_session(
            ledger, aws, started, wait, timeout, notifications_queue, subscribers, copy
        )
        factory = CallFactory(ledger.plan(), session.options)
        # First what came late: a late success is not sent again, a late failure is retried
        # as a failure. The counts are read first: the whole state only when there is a look.
        if ledger.counts()[State.EXPIRED]:
            state = load_run_state(ledger, factory)
            look_for_late_results(ledger, state, _collector(session), session.subscribers)
        again = _new_attempts(ledger, factory, states)
        session.subscribers.notice(NoticeLevel.INFO, f"{again} item(s) will be sent again")
        return _run(ledger, session)


def _new_attempts(ledger: Ledger, factory: CallFactory, states: tuple[State, ...]) -> int:
    """Give every row whose latest attempt is in ``states`` a new attempt, pending; how many."""
    now = time.time()
    again = 0
    for row, attempt in retryable_attempts(ledger, states):
        call = factory.call(row, attempt + 1)
        ledger.record(Event(row, call.attempt, State.PENDING, now, inference_id=call.inference_id))
        again += 1
    ledger.flush()
    return again


def dry_run(
    manifest_source: str,
    options: RunOptions,
    *,
    run_dir: Path | None = None,
    skip_invalid: bool = False,
    s3_client: Any = None,
    shard: Shard | None = None,
) -> DryRun:
    """What ``submit`` would do, sending nothing and writing nothing."""
    check_options(options)
    run_dir = run_dir or default_run_dir(manifest_source, options.endpoint, shard)
    if s3_client is None and manifest_source.startswith("s3://"):
        s3_client = make_clients(options.aws).s3
    manifest = read_run_manifest(
        manifest_source, s3_client, options, skip_invalid=skip_invalid, shard=shard
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
    estimate = to_send / options.rate if options.rate else None
    return DryRun(
        run_dir,
        total,
        done,
        to_send,
        first,
        estimate,
        len(manifest.duplicates),
        len(manifest.problems),
    )


@dataclass
class _Session:
    """What one command brings to a run: its options, clients and how long to wait."""

    options: RunOptions
    clients: Any
    started: float
    wait: bool
    timeout: float | None
    notifications_queue: str | None
    subscribers: Subscribers
    mirror: LedgerMirror | None = None


@contextmanager
def _open_run(
    run_dir: Path,
    aws: AwsSettings | None,
    mirror: MirrorSettings | None,
    subscribers: Subscribers,
) -> Iterator[tuple[Ledger, LedgerMirror | None]]:
    """The run's ledger, open for writing, and its mirror (``mirror``, else the one in
    run.json), whose lease is held until the end; a run only in the mirror is downloaded."""
    saved = saved_settings(run_dir)
    # The same prefix again keeps the run's own lease duration (--ledger-lease-seconds).
    settings = saved if saved and (mirror is None or mirror.uri == saved.uri) else mirror
    s3, owner_args = mirror_client(run_dir, aws) if settings else (None, {})
    with open_mirror(run_dir, settings, s3, subscribers, owner_args) as copy:
        if not Ledger.exists(run_dir):
            elsewhere = f", nor does {settings.uri}" if settings else ""
            raise RunError(f"{run_dir} holds no bulkinvoke run{elsewhere}")
        with Ledger.open(run_dir) as ledger:
            if ledger.config.get("local"):
                raise RunError(local_run_message(run_dir))
            recorded = ledger.config.get("mirror") or {}
            if mirror is not None and recorded.get("uri") != mirror.uri:
                ledger.save_config({**ledger.config, "mirror": mirror.to_config()})
            yield ledger, copy


def _resumed_session(
    ledger: Ledger,
    aws: AwsSettings | None,
    started: float,
    wait: bool,
    timeout: float | None,
    notifications_queue: str | None,
    subscribers: Subscribers | None,
    mirror: LedgerMirror | None = None,
) -> _Session:
    options = RunOptions.from_config(ledger.config["options"])
    if aws is not None:
        options = replace(options, aws=options.aws.merged_with(aws))
    clients = make_clients(options.aws, max_connections=options.concurrency + 4)
    return _Session(
        options,
        clients,
        started,
        wait,
        timeout,
        notifications_queue,
        subscribers or Subscribers(),
        mirror,
    )


def retryable_attempts(ledger: Ledger, states: tuple[State, ...]) -> list[tuple[int, int]]:
    """(row, latest attempt) of every row whose latest attempt ended in ``states``."""
    latest = ledger.latest()
    wanted = {state.value for state in states}
    invalid = invalid_reasons(latest)
    return [
        (row, attempt)
        for row, attempt, status, reason in zip(
            latest.column("row").to_pylist(),
            latest.column("attempt").to_pylist(),
            latest.column("state").to_pylist(),
            invalid,
            strict=True,
        )
        if status in wanted and reason is None
    ]


def _run(ledger: Ledger, session: _Session, *, send: bool = True, duplicates: int = 0) -> RunResult:
    options = session.options
    clients = session.clients
    factory = CallFactory(ledger.plan(), options)
    collector = _collector(session)
    state: RunState = load_run_state(ledger, factory)
    record_rejections(ledger, state.unrecorded_rejections)
    if state.expired and not send:  # collect: asked what has come (not every session pays)
        look_for_late_results(ledger, state, collector, session.subscribers)
    limiter = RateLimiter(options.rate)
    if (
        send
        and options.aws.transport is not Transport.BOTOCORE
        and not isinstance(clients.sagemaker_runtime, DirectRuntimeClient)
    ):
        session.subscribers.notice(
            NoticeLevel.WARNING,
            "a proxy or a client certificate is configured for the endpoint: calls go through "
            "botocore's HTTP stack, at about half the rate of --transport direct "
            "(--transport botocore chooses this and drops this warning)",
        )
    invoker = Invoker(
        clients.sagemaker_runtime,
        options.endpoint,
        limiter=limiter,
        policy=RetryPolicy(),
        output_path_extension=options.output_path_extension,
    )
    notifications = (
        NotificationQueue(clients.sqs(session.notifications_queue), session.notifications_queue)
        if session.notifications_queue
        else None
    )

    def make_engine(state: RunState, *, wait: bool, work: list[Call]) -> Engine:
        return Engine(
            ledger,
            invoker,
            collector,
            limiter,
            EngineSettings(
                concurrency=options.concurrency,
                max_in_flight=options.max_in_flight,
                wait=wait,
                deadline=session.started + session.timeout if session.timeout is not None else None,
                max_failures=parse_max_failures(options.max_failures, state.total),
                sweep_once=not send,
            ),
            work=work,
            in_doubt={(call.row, call.attempt) for call in state.in_doubt},
            watches=state.watches,
            counts=state.counts,
            expected_result_by=factory.expected_result_by,
            notifications=notifications,
            subscribers=session.subscribers,
        )

    sent_first = 0
    if send and state.in_doubt and state.output_directory is None:
        # Where outputs land is learned from an accepted call, and a session killed before any
        # answer was on disk leaves in-doubt items that cannot be looked for: send one call
        # first, a pending item's if there is one (so it cannot be a duplicate), then look.
        first = state.work[:1] or state.in_doubt[:1]
        probe = make_engine(replace(state, watches=[]), wait=False, work=first).run()
        if probe.outcome is not Outcome.ACCEPTED and probe.outcome is not Outcome.COMPLETE:
            return _session_result(ledger, session, state, probe, duplicates)
        sent_first = probe.submitted
        state = load_run_state(ledger, factory)
    if send and state.in_doubt:
        problem = settle_in_doubt(ledger, state, collector, session.subscribers)
        if problem is not None:
            session.subscribers.notice(NoticeLevel.ERROR, f"stopping: {problem}")
            stopped = EngineResult(Outcome.STOPPED, state.counts, stop_reason=problem)
            return _session_result(ledger, session, state, stopped, duplicates)
    engine = make_engine(state, wait=session.wait, work=state.work if send else [])
    mirror = session.mirror
    with mirror.running(on_lost=engine.request_stop) if mirror else nullcontext():
        result = engine.run()
    return _session_result(ledger, session, state, result, duplicates, sent_first)


def _session_result(
    ledger: Ledger,
    session: _Session,
    state: RunState,
    result: EngineResult,
    duplicates: int,
    sent_first: int = 0,
) -> RunResult:
    outcome, stop_reason = result.outcome, result.stop_reason
    # The run is done but a new machine would resume from an older ledger: resumable, exit 4.
    problem = session.mirror.final_sync() if session.mirror else None
    if problem is not None:
        session.subscribers.notice(NoticeLevel.ERROR, problem)
        outcome, stop_reason = Outcome.STOPPED, problem
    return RunResult(
        run_dir=ledger.run_dir,
        outcome=outcome,
        counts=result.counts,
        total=state.total,
        elapsed_s=time.monotonic() - session.started,
        submitted=sent_first + result.submitted,
        stop_reason=stop_reason,
        duplicates=duplicates,
        s3_requests=result.s3_requests,
        earlier_results=result.earlier_results,
        local=bool(ledger.config.get("local")),
    )


def _collector(session: _Session) -> Collector:
    return Collector(
        session.clients.s3, expected_bucket_owner=session.options.aws.expected_bucket_owner
    )
