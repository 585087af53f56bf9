"""One entry point for a run: plan it, submit, wait, resume.

``submit`` turns a manifest into a run directory (or continues the one that is there) and hands
the work to the :class:`~bulkinvoke.engine.Engine`; ``resume`` continues a run from its ledger with
the options it was started with. Both return a :class:`RunResult`; neither prints anything.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bulkinvoke.aws import AwsSettings, bucket_owner_args, make_clients
from bulkinvoke.collector import Collector, Watch
from bulkinvoke.engine import Engine, EngineResult, EngineSettings, Outcome
from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.exit_codes import ExitCode
from bulkinvoke.invoker import Call, Invoker
from bulkinvoke.ledger import Event, Ledger
from bulkinvoke.ledger_io import CONFIG_NAME, read_config
from bulkinvoke.ledger_views import duplicates_table
from bulkinvoke.limiter import RateLimiter
from bulkinvoke.manifest import Manifest, problems_table, read_manifest
from bulkinvoke.mirror import LedgerMirror, MirrorSettings, open_mirror, saved_settings
from bulkinvoke.mirror_files import mirror_client
from bulkinvoke.notifications import NotificationQueue
from bulkinvoke.options import RequestOptions, check_endpoint_name
from bulkinvoke.plan import CallFactory, RunState, load_run_state
from bulkinvoke.retry import RetryPolicy, classify
from bulkinvoke.shards import Shard, select_shard
from bulkinvoke.states import State

RUNS_ROOT = Path("bulkinvoke-runs")
CONFIG_VERSION = 1


class RunError(Exception):
    """A run cannot start as asked (a usage error: nothing was sent)."""


class InvalidManifest(RunError):
    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        n = len(manifest.problems)
        super().__init__(f"{manifest.source}: {n} invalid row{'s' * (n != 1)}; nothing was sent")


@dataclass(frozen=True)
class RunOptions:
    """What the user chose for a run; kept in run.json so resume and retry use the same."""

    endpoint: str
    request: RequestOptions = field(default_factory=RequestOptions)
    output_path_extension: str | None = None
    id_namespace: str = ""
    rate: float | None = None
    concurrency: int = 16
    max_in_flight: int | None = None
    max_failures: str | None = None
    expire_after: float | None = None
    aws: AwsSettings = field(default_factory=AwsSettings)

    def to_config(self) -> dict[str, Any]:
        config = asdict(self)
        config["aws"] = self.aws.to_config()
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RunOptions:
        values = dict(config)
        values["request"] = RequestOptions(**values["request"])
        values["aws"] = AwsSettings.from_config(values["aws"])
        return cls(**values)


# Changing these would change what an attempt sends, so a continued run must keep them.
_FIXED_OPTIONS = ("endpoint", "request", "output_path_extension", "id_namespace")


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

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome is Outcome.INTERRUPTED:
            return ExitCode.INTERRUPTED
        if self.outcome is Outcome.STOPPED:
            return ExitCode.STOPPED
        if self.outcome is Outcome.INCOMPLETE:
            return ExitCode.INCOMPLETE
        if any(self.counts.get(state) for state in (State.FAILED, State.EXPIRED, State.REJECTED)):
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


def default_run_dir(manifest: str, endpoint: str, shard: Shard | None = None) -> Path:
    name = manifest.rstrip("/").rsplit("/", 1)[-1] or manifest
    stem = Path(name).stem if not manifest.startswith("s3://") else name
    suffix = f"-{shard.label}" if shard else ""
    return RUNS_ROOT / re.sub(r"[^A-Za-z0-9._-]+", "_", f"{stem}-{endpoint}{suffix}")


def parse_max_failures(text: str | None, total: int) -> int | None:
    """``N`` failures, or ``P%`` of the run's items, after which the run stops."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
    if match is None:
        raise RunError(f"--max-failures takes a count or a percentage, not {text!r}")
    number = float(match.group(1))
    return int(total * number / 100) if match.group(2) else int(number)


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
) -> RunResult:
    """Run every row of a manifest (or of its ``shard``) through the endpoint, or continue the
    run already there. With ``mirror`` (else the one in run.json), the ledger is kept in S3 too
    (each shard under its own ``shard-K-of-N/``), and a run only there is continued from it."""
    started = time.monotonic()
    _check_options(options)
    run_dir = run_dir or default_run_dir(manifest_source, options.endpoint, shard)
    if Ledger.exists(run_dir):
        _check_shard(read_config(run_dir / CONFIG_NAME), shard)
    clients = make_clients(options.aws, max_connections=options.concurrency + 4)
    manifest = _read_valid_manifest(
        manifest_source, clients.s3, skip_invalid, options.aws.expected_bucket_owner
    )
    if shard is not None:
        manifest = select_shard(manifest, shard, options.id_namespace, options.endpoint)
    subscribers = subscribers or Subscribers()
    mirror = mirror.for_shard(shard) if mirror else saved_settings(run_dir)
    owner = options.aws.expected_bucket_owner
    owner_args = bucket_owner_args(owner)

    def check_mirrored_run(config: dict[str, Any]) -> None:
        _check_same_run(config, manifest, options, shard)

    with open_mirror(
        run_dir, mirror, clients.s3, subscribers, owner_args, check_mirrored_run
    ) as copy:
        ledger = _open_or_create(run_dir, manifest, options, shard, mirror)
        session = _Session(
            options, clients, started, wait, timeout, notifications_queue, subscribers, copy
        )
        with ledger:
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


RETRYABLE_STATES = (State.FAILED, State.EXPIRED, State.REJECTED)


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
    sent and are left as they are.
    """
    unknown = [state for state in states if state not in RETRYABLE_STATES]
    if unknown:
        raise RunError(f"only failed, expired or rejected items can be retried, not {unknown[0]}")
    started = time.monotonic()
    subscribers = subscribers or Subscribers()
    with _open_run(run_dir, aws, None, subscribers) as (ledger, copy):
        session = _resumed_session(
            ledger, aws, started, wait, timeout, notifications_queue, subscribers, copy
        )
        factory = CallFactory(ledger.plan(), session.options)
        now = time.time()
        again = 0
        for row, attempt in retryable_attempts(ledger, states):
            call = factory.call(row, attempt + 1)
            ledger.record(
                Event(row, call.attempt, State.PENDING, now, inference_id=call.inference_id)
            )
            again += 1
        ledger.flush()
        session.subscribers.notice(NoticeLevel.INFO, f"{again} item(s) will be sent again")
        return _run(ledger, session)


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
    _check_options(options)
    run_dir = run_dir or default_run_dir(manifest_source, options.endpoint, shard)
    if s3_client is None and manifest_source.startswith("s3://"):
        s3_client = make_clients(options.aws).s3
    manifest = _read_valid_manifest(
        manifest_source, s3_client, skip_invalid, options.aws.expected_bucket_owner
    )
    if shard is not None:
        manifest = select_shard(manifest, shard, options.id_namespace, options.endpoint)
    factory = CallFactory(manifest.table, options)
    done = 0
    if Ledger.exists(run_dir):
        with Ledger.open(run_dir, writable=False) as ledger:
            # What submit would refuse, the dry run refuses too, rather than count another
            # run's items as done.
            _check_same_run(ledger.config, manifest, options, shard)
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


def _check_options(options: RunOptions) -> None:
    """Refuse, before anything is written, options that would fail every call or the run later
    (and, saved in run.json, every resume of it too)."""
    problem = check_endpoint_name(options.endpoint)
    if problem:
        raise RunError(problem)
    if options.rate is not None and not (math.isfinite(options.rate) and options.rate > 0):
        raise RunError(f"--rate must be a positive number of calls per second, not {options.rate}")
    parse_max_failures(options.max_failures, 0)


def _read_valid_manifest(
    source: str, s3_client: Any, skip_invalid: bool, expected_bucket_owner: str | None = None
) -> Manifest:
    manifest = read_manifest(
        source, s3_client=s3_client, expected_bucket_owner=expected_bucket_owner
    )
    if manifest.problems and not skip_invalid:
        raise InvalidManifest(manifest)
    return manifest


def _open_or_create(
    run_dir: Path,
    manifest: Manifest,
    options: RunOptions,
    shard: Shard | None,
    mirror: MirrorSettings | None,
) -> Ledger:
    if Ledger.exists(run_dir):
        ledger = Ledger.open(run_dir)
        try:
            _check_same_run(ledger.config, manifest, options, shard)
            ledger.config["options"] = options.to_config()
            if mirror is not None:
                ledger.config["mirror"] = mirror.to_config()
            ledger.save_config(ledger.config)
        except BaseException:
            ledger.close()
            raise
        return ledger
    import pyarrow as pa

    plan = manifest.table
    if manifest.problems:
        plan = pa.concat_tables(
            [plan, problems_table(manifest.problems)], promote_options="default"
        )
        plan = plan.sort_by("row")
    config = {
        "version": CONFIG_VERSION,
        "created_at": time.time(),
        "manifest": {
            "source": str(manifest.source),
            "fingerprint": manifest.fingerprint,
            "rows": manifest.row_count,
            "items": plan.num_rows,
            "duplicates": len(manifest.duplicates),
        },
        "options": options.to_config(),
        "shard": shard.to_config() if shard else None,
        "mirror": mirror.to_config() if mirror else None,
    }
    duplicates = duplicates_table(
        [d.row for d in manifest.duplicates], [d.first_row for d in manifest.duplicates]
    )
    ledger = Ledger.create(run_dir, config, plan, duplicates)
    now = time.time()
    ledger.record_many(
        Event(p.row, 1, State.REJECTED, now, error=p.reason)
        for p in manifest.problems
        if p.row is not None
    )
    ledger.flush()
    return ledger


def _check_shard(config: dict[str, Any], shard: Shard | None) -> None:
    before = Shard.from_config(config.get("shard"))
    if before != shard:
        held = f"shard {before}" if before else "the whole manifest"
        asked = f"shard {shard}" if shard else "the whole manifest"
        raise RunError(
            f"the run in this directory is of {held}, not {asked}: each shard is a run of its "
            "own, in its own --run-dir"
        )


def _check_same_run(
    config: dict[str, Any], manifest: Manifest, options: RunOptions, shard: Shard | None
) -> None:
    _check_shard(config, shard)
    saved = config["manifest"]
    if saved["fingerprint"] != manifest.fingerprint:
        raise RunError(
            f"the run in this directory was made from a different manifest "
            f"({saved['source']}, {saved['fingerprint'][:19]}...); "
            "use another --run-dir, or `bulkinvoke resume` to continue the existing run"
        )
    before = RunOptions.from_config(config["options"])
    for name, was, now in _fixed_values(before, options):
        if was != now:
            shown = "(not shown: custom attributes are sensitive)"
            if name != "custom_attributes":
                shown = f"(--{name.replace('_', '-')} {was!r}, not {now!r})"
            raise RunError(
                f"this run was started with a different --{name.replace('_', '-')} {shown}; "
                "a continued run must send the same requests: pass the same options, "
                "use `bulkinvoke resume`, or start a new run with another --run-dir"
            )


def _fixed_values(before: RunOptions, now: RunOptions) -> Iterator[tuple[str, Any, Any]]:
    """(option, value before, value now) for every option a continued run must keep."""
    for name in _FIXED_OPTIONS:
        if name == "request":
            for option in fields(RequestOptions):
                yield (
                    option.name,
                    getattr(before.request, option.name),
                    getattr(now.request, option.name),
                )
        else:
            yield name, getattr(before, name), getattr(now, name)


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
    settings = mirror or saved_settings(run_dir)
    s3, owner_args = mirror_client(run_dir, aws) if settings else (None, {})
    with open_mirror(run_dir, settings, s3, subscribers, owner_args) as copy:
        if not Ledger.exists(run_dir):
            elsewhere = f", nor does {settings.uri}" if settings else ""
            raise RunError(f"{run_dir} holds no bulkinvoke run{elsewhere}")
        with Ledger.open(run_dir) as ledger:
            if mirror is not None and ledger.config.get("mirror") != mirror.to_config():
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
    invalid = (
        latest.column("invalid_reason").to_pylist()
        if "invalid_reason" in latest.column_names
        else [None] * latest.num_rows
    )
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
    collector = Collector(clients.s3, expected_bucket_owner=options.aws.expected_bucket_owner)
    state: RunState = load_run_state(ledger, factory)
    limiter = RateLimiter(options.rate)
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
        problem = _settle_in_doubt(ledger, state, collector, session.subscribers)
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
    )


def _settle_in_doubt(
    ledger: Ledger, state: RunState, collector: Collector, subscribers: Subscribers
) -> str | None:
    """Attempts whose call may or may not have been sent: finished ones are not sent again.
    Returns why the run must stop instead, if S3 cannot be asked which are finished."""
    from botocore.exceptions import BotoCoreError, ClientError

    watches = [
        Watch(call.row, call.attempt, call.inference_id, location, None, 0.0, float("inf"))
        for call in state.in_doubt
        if (location := state.expected_output(call)) is not None
    ]
    locations = {(w.row, w.attempt): w.output_location for w in watches}
    try:
        findings = collector.sweep(watches) if watches else []
    except (ClientError, BotoCoreError) as error:
        # Sending them again blind could repeat every one; the next resume asks again.
        return (
            f"cannot check S3 for the outputs of {len(watches)} in-doubt items "
            f"({classify(error).describe()}); resume once S3 can be read"
        )
    now = time.time()
    finished = set()
    for finding in findings:
        ledger.record(
            Event(
                finding.row,
                finding.attempt,
                finding.state,
                now,
                completed_at=finding.completed_at,
                output_bytes=finding.output_bytes,
                output_location=locations[(finding.row, finding.attempt)],
            )
        )
        state.counts[State.SUBMITTING] -= 1
        state.counts[finding.state] = state.counts.get(finding.state, 0) + 1
        finished.add((finding.row, finding.attempt))
    ledger.flush()
    resend = [call for call in state.in_doubt if (call.row, call.attempt) not in finished]
    state.work[:0] = resend
    state.in_doubt = resend
    subscribers.notice(
        NoticeLevel.INFO,
        f"{len(finished)} in-doubt item(s) already had output; {len(resend)} will be sent again",
    )
    return None
