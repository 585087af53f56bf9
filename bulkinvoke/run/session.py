"""One session of a run: its options, clients and mirror, the in-doubt and late results settled
first, then the engine, and the :class:`~bulkinvoke.run.outcome.RunResult` it ends with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from bulkinvoke.calls.aws import (
    NO_VERIFY_WARNING,
    AwsSettings,
    Clients,
    Transport,
    make_clients,
)
from bulkinvoke.calls.endpoint import EndpointDescription
from bulkinvoke.calls.invoker import Call, Invoker
from bulkinvoke.calls.limiter import RateLimiter
from bulkinvoke.calls.retry import RetryPolicy
from bulkinvoke.calls.transport import DirectRuntimeClient
from bulkinvoke.errors import RunError
from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.ledger.schema import Event
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.results.collector import Collector
from bulkinvoke.results.notifications import NotificationQueue
from bulkinvoke.run.definition import (
    RunOptions,
    local_run_message,
    parse_max_failures,
    record_rejections,
)
from bulkinvoke.run.doubt import InDoubt
from bulkinvoke.run.endpoint import in_flight_budget, look_at_endpoint, output_directory
from bulkinvoke.run.endpoint_load import watch_load
from bulkinvoke.run.engine import Engine, EngineSettings
from bulkinvoke.run.in_doubt import look_for_late_results, settle_in_doubt
from bulkinvoke.run.outcome import EngineResult, Outcome, RunResult
from bulkinvoke.run.work import CallFactory, RunState, invalid_reasons, load_run_state
from bulkinvoke.scale.mirror import LedgerMirror, open_mirror
from bulkinvoke.scale.mirror_files import mirror_client
from bulkinvoke.scale.mirror_settings import MirrorSettings, saved_settings
from bulkinvoke.states import State


@dataclass
class Session:
    """What one command brings to a run: its options, clients and how long to wait."""

    options: RunOptions
    clients: Clients
    started: float
    wait: bool
    timeout: float | None
    notifications_queue: str | None
    subscribers: Subscribers
    mirror: LedgerMirror | None = None
    in_doubt: InDoubt = InDoubt.RESEND
    # The endpoint was already described (or the check is off) before the session: by submit,
    # before it staged or wrote anything. None: not described.
    looked_at_endpoint: bool = False
    described: EndpointDescription | None = None


@contextmanager
def open_run(
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


def resumed_session(
    ledger: Ledger,
    aws: AwsSettings | None,
    started: float,
    wait: bool,
    timeout: float | None,
    notifications_queue: str | None,
    subscribers: Subscribers | None,
    mirror: LedgerMirror | None = None,
    in_doubt: InDoubt = InDoubt.RESEND,
) -> Session:
    options = RunOptions.from_config(ledger.config["options"])
    if aws is not None:
        options = replace(options, aws=options.aws.merged_with(aws))
    clients = make_clients(options.aws, max_connections=options.most_calls_in_progress + 4)
    return Session(
        options,
        clients,
        started,
        wait,
        timeout,
        notifications_queue,
        subscribers or Subscribers(),
        mirror,
        in_doubt,
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


def run_session(
    ledger: Ledger, session: Session, *, send: bool = True, duplicates: int = 0
) -> RunResult:
    options = session.options
    clients = session.clients
    described = session.described
    if send and not session.looked_at_endpoint:
        described = look_at_endpoint(clients, options, session.subscribers)
    load = watch_load(clients, options, described, session.subscribers)
    if load is not None:
        session = replace(session, subscribers=load.subscribers)
    factory = CallFactory(ledger.plan(), options)
    collector = make_collector(session)
    state: RunState = load_run_state(ledger, factory)
    # Described, the endpoint says where outputs land: in-doubt items can be looked for at
    # once, rather than after a first call's answer shows it.
    state.output_directory = state.output_directory or output_directory(
        described, options.output_path_extension
    )
    record_rejections(ledger, state.unrecorded_rejections)
    if state.expired and not send:  # collect: asked what has come (not every session pays)
        look_for_late_results(ledger, state, collector, session.subscribers)
    limiter = RateLimiter(options.rate)
    if options.aws.verify_ssl is False:
        session.subscribers.notice(NoticeLevel.WARNING, NO_VERIFY_WARNING)
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
                concurrency=options.most_calls_in_progress,
                sized_for_rate=options.slots_sized_for_rate,
                max_in_flight=in_flight_budget(options, described),
                wait=wait,
                deadline=session.started + session.timeout if session.timeout is not None else None,
                max_failures=parse_max_failures(options.max_failures, state.total),
                sweep_once=not send,
            ),
            work=work,
            in_doubt={(call.row, call.attempt) for call in state.in_doubt},
            watches=state.watches,
            doubts=state.doubts,
            results_horizon=state.results_horizon,
            longest_latency=state.longest_latency,
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
            return session_result(ledger, session, state, probe, duplicates)
        sent_first = probe.submitted
        state = load_run_state(ledger, factory)
    if send and state.in_doubt:
        problem = settle_in_doubt(
            ledger,
            state,
            collector,
            session.subscribers,
            session.in_doubt,
            factory.expected_result_by,
        )
        if problem is not None:
            session.subscribers.notice(NoticeLevel.ERROR, f"stopping: {problem}")
            stopped = EngineResult(Outcome.STOPPED, state.counts, stop_reason=problem)
            return session_result(ledger, session, state, stopped, duplicates)
    engine = make_engine(state, wait=session.wait, work=state.work if send else [])
    mirror = session.mirror
    with (
        mirror.running(on_lost=engine.request_stop) if mirror else nullcontext(),
        load.running() if load else nullcontext(),
    ):
        result = engine.run()
    return session_result(ledger, session, state, result, duplicates, sent_first)


def session_result(
    ledger: Ledger,
    session: Session,
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
        in_doubt_found=state.in_doubt_found + result.in_doubt_found,
        in_doubt_resent=state.in_doubt_resent + result.in_doubt_resent,
        local=bool(ledger.config.get("local")),
    )


def make_collector(session: Session) -> Collector:
    return Collector(
        session.clients.s3, expected_bucket_owner=session.options.aws.expected_bucket_owner
    )


def new_attempts(ledger: Ledger, factory: CallFactory, states: tuple[State, ...]) -> int:
    """Give every row whose latest attempt is in ``states`` a new attempt, pending; how many."""
    now = time.time()
    again = 0
    for row, attempt in retryable_attempts(ledger, states):
        call = factory.call(row, attempt + 1)
        ledger.record(Event(row, call.attempt, State.PENDING, now, inference_id=call.inference_id))
        again += 1
    ledger.flush()
    return again
