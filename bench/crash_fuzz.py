"""Crash fuzzing: kill -9 a real `bulkinvoke` at random instants, resume, and check what survived.

    .venv/bin/python bench/crash_fuzz.py [--kills 300] [--items 3000] [--seed 0] [--json FILE]

Each trial is one run directory (its own ``--id-namespace`` and output sub-path, so trials never
share an inference ID) driven through ``--kills-per-trial`` sessions, each a `bulkinvoke submit` or
`bulkinvoke resume` subprocess that dies by SIGKILL at an instant chosen by one of these modes:

* ``startup``: a random moment in its first second (imports, manifest, opening, settling);
* ``create``: while it writes the files of a new run (plan.parquet, run.json);
* ``random``: a random moment after the first batch of events is on disk;
* ``batch``: inside the N-th batch write: data written but not fsynced, or renamed into place
  but the directory not fsynced;
* ``compaction``: inside the N-th compaction: its file written but not fsynced, in place with the
  batches it folded not yet removed, or halfway through removing them;
* ``collection``: once every item has been sent and results are being awaited.

``create``, ``batch`` and ``compaction`` use the crash points of ``bench/fault_inject`` (the
process sends itself SIGKILL at that exact step); the others are a kill -9 from here. The sessions
compact after ``--compact-after`` batches (16) rather than 64, so that compaction, and crashes in
it, are frequent.

Then one last session runs to completion, and these invariants are checked:

1. every manifest row ends ``succeeded``, on its first attempt: no item lost;
2. the ledger's whole history (every batch file ever written, hard-linked aside by the hook as
   it is renamed into place) replays through legal state transitions, with exactly one final
   event per attempt, and its fold equals what the ledger reads now: compaction lost nothing;
3. every input reached the endpoint (``LocalStack.accepted_ids()``);
4. no call reached the endpoint while its row was still ``pending`` on disk (the intent is durable
   before the call);
5. duplicate calls are bounded by the calls in flight at each kill, measured at the kill as the
   accepted inference IDs whose attempt the ledger still has as ``submitting``;
6. an item whose output object already existed when a session started was not sent again;
7. no session printed a traceback, and the last one exited 0.

The CI test tests/reliability/test_crash_fuzz.py runs a few kills of the same harness.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3

from bulkinvoke.emulator import EmulatorConfig, EndpointSpec, LocalStack, start_local_stack
from bulkinvoke.errors import LedgerError
from bulkinvoke.ledger.schema import event_schema, fold, read_parquet
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.manifest.ids import inference_id
from bulkinvoke.states import State, check_transition

FAULT_INJECT = Path(__file__).resolve().parent / "fault_inject"
ENDPOINT = "crash-fuzz"
INPUT_BUCKET = "crash-fuzz-in"
OUTPUT_BUCKET = "crash-fuzz-out"
MODES = ("startup", "create", "random", "batch", "compaction", "collection")
FLUSH_INTERVAL = 0.1  # the engine's (EngineSettings.flush_interval)
# Fake credentials: whatever the shell holds, nothing real reaches the emulator.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEKEYFORCRASH1",
    "AWS_SECRET_ACCESS_KEY": "fake/secret/for/crash/fuzzing/0123456789",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_KEY = CREDENTIALS["AWS_ACCESS_KEY_ID"]


@dataclass(frozen=True)
class FuzzSettings:
    kills: int = 300
    items: int = 3000
    kills_per_trial: int = 10
    concurrency: int = 8
    rate: float = 400.0
    latency: str = "uniform:0.01-0.08"
    seed: int = 0
    session_timeout: float = 180.0
    # Ledger.compact_after in the sessions (its own default is 64): short runs compact often.
    compact_after: int = 16
    # A "batch" crash comes at a batch write drawn from the first crash_steps of a session: a
    # session that writes fewer finishes instead (a short CI run wants a small number here).
    crash_steps: int = 40
    # Modes in turn (CI, so that a few kills cover every mode) rather than drawn at random.
    cycle_modes: bool = False


@dataclass
class Kill:
    trial: int
    mode: str
    # "write" or "compaction" when a temp file of one was still there after the kill.
    interrupted: str | None
    unflushed: int


@dataclass
class FuzzReport:
    settings: FuzzSettings
    trials: int = 0
    sessions: int = 0
    kills: list[Kill] = field(default_factory=list)
    items: int = 0
    items_lost: int = 0
    calls: int = 0
    duplicate_calls: int = 0
    duplicate_bound: int = 0
    events_replayed: int = 0
    violations: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def kills_by_mode(self) -> dict[str, int]:
        return dict(Counter(kill.mode for kill in self.kills))

    @property
    def kills_inside(self) -> dict[str, int]:
        """Kills that cut a ledger write short, by what was being written: a crash point's name
        says it, and an outside kill that left a temp file behind did too."""
        kinds: Counter[str] = Counter()
        for kill in self.kills:
            point = kill.interrupted or ""
            if point.startswith(("batch", "write")):
                kinds["write"] += 1
            elif point.startswith(("compact", "compaction")):
                kinds["compaction"] += 1
            elif point == "create":
                kinds["create"] += 1
        return dict(kinds)

    def figures(self) -> dict[str, Any]:
        unflushed = [kill.unflushed for kill in self.kills]
        return {
            "trials": self.trials,
            "sessions": self.sessions,
            "kills": len(self.kills),
            "kills_by_mode": self.kills_by_mode,
            "kills_inside_a_ledger_write": self.kills_inside.get("write", 0),
            "kills_inside_a_compaction": self.kills_inside.get("compaction", 0),
            "kills_inside_creating_the_run": self.kills_inside.get("create", 0),
            "items": self.items,
            "items_lost": self.items_lost,
            "calls": self.calls,
            "duplicate_calls": self.duplicate_calls,
            "duplicate_bound": self.duplicate_bound,
            "max_in_flight_at_a_kill": max(unflushed, default=0),
            "events_replayed": self.events_replayed,
            "violations": len(self.violations),
            "elapsed_s": round(self.elapsed_s, 1),
            "settings": asdict(self.settings),
        }


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


@dataclass
class _Snapshot:
    """What the endpoint and S3 held when a session was about to start."""

    accepted: Counter[str]
    with_output: set[str]


class CrashFuzzer:
    def __init__(
        self,
        settings: FuzzSettings,
        workdir: Path,
        stack: LocalStack,
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.workdir = workdir
        self.stack = stack
        self.log = log
        self.rng = random.Random(settings.seed)
        self.report = FuzzReport(settings)
        self.s3 = boto3.client("s3", endpoint_url=stack.s3_url, region_name="us-east-1")
        self.env = {
            **os.environ,
            **CREDENTIALS,
            "AWS_ENDPOINT_URL_S3": stack.s3_url,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": stack.sagemaker_url,
            "AWS_ENDPOINT_URL_SAGEMAKER": stack.sagemaker_url,
            "AWS_ENDPOINT_URL_CLOUDWATCH": stack.s3_url,
        }
        self.env.pop("AWS_SESSION_TOKEN", None)
        self.env.pop("AWS_PROFILE", None)
        # The fault_inject hook crashes sessions at exact ledger steps and archives batches.
        self.env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(FAULT_INJECT), self.env.get("PYTHONPATH")])
        )
        if settings.compact_after:
            self.env["BULKINVOKE_COMPACT_AFTER"] = str(settings.compact_after)

    def run(self) -> FuzzReport:
        started = time.monotonic()
        self._prepare()
        manifest, locations = self._manifest()
        trial = 0
        mode_turn = 0
        while len(self.report.kills) < self.settings.kills:
            trial += 1
            left = self.settings.kills - len(self.report.kills)
            kills = min(self.settings.kills_per_trial, left)
            mode_turn = self._trial(trial, manifest, locations, kills, mode_turn)
        self.report.trials = trial
        self.report.elapsed_s = time.monotonic() - started
        return self.report

    def _prepare(self) -> None:
        if ENDPOINT not in {spec.name for spec in self.stack.endpoints()}:
            self.stack.add_endpoint(
                EndpointSpec(ENDPOINT, f"s3://{OUTPUT_BUCKET}/out", f"s3://{OUTPUT_BUCKET}/fail")
            )
        # The sessions sign with CREDENTIALS: the endpoint must know them, whoever started it.
        known = {**self.stack.config.credentials, _KEY: CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}
        self.stack.configure(latency=self.settings.latency, credentials=known)
        try:
            self.s3.create_bucket(Bucket=INPUT_BUCKET)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            return

    def _manifest(self) -> tuple[Path, list[str]]:
        prefix = f"items-{uuid.uuid4().hex[:8]}"
        locations = []
        for i in range(self.settings.items):
            key = f"{prefix}/{i:07d}.json"
            self.s3.put_object(Bucket=INPUT_BUCKET, Key=key, Body=f'{{"i": {i}}}'.encode())
            locations.append(f"s3://{INPUT_BUCKET}/{key}")
        manifest = self.workdir / f"{prefix}.csv"
        manifest.write_text("input_location\n" + "\n".join(locations) + "\n")
        return manifest, locations

    # -- one trial -------------------------------------------------------------------------

    def _trial(
        self, trial: int, manifest: Path, locations: list[str], kills: int, mode_turn: int
    ) -> int:
        namespace = f"fuzz-{uuid.uuid4().hex[:12]}"
        extension = f"t{trial}-{namespace}"
        ids = {
            inference_id(namespace, ENDPOINT, loc, 1): row for row, loc in enumerate(locations, 1)
        }
        run_dir = self.workdir / f"trial-{trial:04d}"
        archive = self.workdir / f"trial-{trial:04d}-batches"
        archive.mkdir()
        submit = [
            "submit", str(manifest), "--endpoint", ENDPOINT, "--run-dir", str(run_dir),
            "--id-namespace", namespace, "--output-path-extension", extension,
            "--rate", str(self.settings.rate), "--concurrency", str(self.settings.concurrency),
        ]  # fmt: skip
        bound = 0
        finished = False
        for _ in range(kills):
            if self.settings.cycle_modes:
                mode = MODES[mode_turn % len(MODES)]
                mode_turn += 1
            else:
                mode = self.rng.choice(MODES)
            if mode == "create" and Ledger.exists(run_dir):
                # The run exists: nothing is created any more.
                mode = "startup"
            before = self._snapshot(ids, extension)
            command = self._command(submit, run_dir)
            rc, interrupted = self._session(command, run_dir, archive, mode, trial)
            self._check_not_resent(before, ids)
            if rc is not None:
                # The session finished before its kill: the run is complete.
                if rc != 0:
                    self._violation(f"trial {trial}: a session exited {rc} by itself")
                finished = True
                break
            unflushed = self._check_after_kill(run_dir, ids, before, trial)
            self.log(f"trial {trial}: killed ({mode}, inside {interrupted}): {unflushed} in flight")
            bound += unflushed
            self.report.kills.append(Kill(trial, mode, interrupted, unflushed))
        if not finished:
            before = self._snapshot(ids, extension)
            rc, _ = self._session(self._command(submit, run_dir), run_dir, archive, None, trial)
            self._check_not_resent(before, ids)
            if rc != 0:
                self._violation(f"trial {trial}: the last session exited {rc}")
        self._check_final(run_dir, archive, ids, bound, trial)
        return mode_turn

    def _command(self, submit: list[str], run_dir: Path) -> list[str]:
        # Continuing with `resume` or with the same `submit` must be the same to the run.
        if Ledger.exists(run_dir) and self.rng.random() < 0.5:
            return ["resume", str(run_dir)]
        return submit

    def _session(
        self, command: list[str], run_dir: Path, archive: Path, mode: str | None, trial: int
    ) -> tuple[int | None, str | None]:
        """Run one session and kill it as ``mode`` says (None: let it finish). Returns its exit
        code if it ended by itself, else what the kill interrupted."""
        self.report.sessions += 1
        name = f"trial-{trial:04d}-session-{self.report.sessions}"
        stderr_path = self.workdir / f"{name}.err"
        crash_report = self.workdir / f"{name}.crash"
        env = {**self.env, "BULKINVOKE_ARCHIVE_DIR": str(archive)}
        point = self._crash_point(mode, run_dir)
        if point is not None:
            env.update(BULKINVOKE_CRASH_AT=point, BULKINVOKE_CRASH_REPORT=str(crash_report))
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "bulkinvoke", *command, "--quiet"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            try:
                if mode is not None and point is None:
                    self._kill_as(mode, process, run_dir)
                rc = process.wait(timeout=self.settings.session_timeout)
            except subprocess.TimeoutExpired:
                _kill(process.pid)
                process.wait()
                self._violation(f"trial {trial}: {command[0]} did not finish in time")
                rc = -signal.SIGKILL
        text = stderr_path.read_text(errors="replace")
        if "Traceback" in text:
            self._violation(f"trial {trial}: a session printed a traceback:\n{text[-2000:]}")
        if rc != -signal.SIGKILL:
            return rc, None
        if crash_report.exists():
            return None, crash_report.read_text()
        return None, _interrupted(run_dir / "events", process.pid)

    def _crash_point(self, mode: str | None, run_dir: Path) -> str | None:
        """``POINT:N`` for the fault_inject hook, for the modes that crash at a ledger step."""
        if mode == "create":
            return f"create:{self.rng.randint(1, 2)}"
        if mode == "batch":
            point = self.rng.choice(["batch-data", "batch-renamed"])
            return f"{point}:{self.rng.randint(1, self.settings.crash_steps)}"
        if mode == "compaction":
            point = self.rng.choice(["compact-data", "compact-renamed", "compact-removing"])
            most = (
                min(self.settings.compact_after, self.settings.crash_steps)
                if point == "compact-removing"
                else 2
            )
            return f"{point}:{self.rng.randint(1, max(most, 1))}"
        return None

    def _kill_as(self, mode: str, process: subprocess.Popen[bytes], run_dir: Path) -> None:
        if mode == "startup":
            _sleep_unless_exited(process, self.rng.uniform(0.05, 1.0))
        elif mode == "random":
            _wait_for(lambda: _has_batches(run_dir), process, 20)
            _sleep_unless_exited(process, self.rng.uniform(0.0, 2.0))
        else:
            _wait_for(lambda: _awaiting_results_only(run_dir), process, 60, interval=0.05)
            _sleep_unless_exited(process, self.rng.uniform(0.0, 0.3))
        _kill(process.pid)

    # -- checks ----------------------------------------------------------------------------

    def _snapshot(self, ids: dict[str, int], extension: str) -> _Snapshot:
        accepted = Counter({i: n for i, n in self.stack.accepted_ids().items() if i in ids})
        with_output = set()
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=OUTPUT_BUCKET, Prefix=f"out/{extension}/"):
            for item in page.get("Contents", ()):
                name = item["Key"].rsplit("/", 1)[-1]
                with_output.add(name.removesuffix(".out"))
        return _Snapshot(accepted, with_output & set(ids))

    def _check_not_resent(self, before: _Snapshot, ids: dict[str, int]) -> None:
        now = self.stack.accepted_ids()
        resent = sorted(i for i in before.with_output if now.get(i, 0) > before.accepted[i])
        if resent:
            self._violation(
                f"{len(resent)} items were sent again although their output existed "
                f"(rows {[ids[i] for i in resent[:10]]})"
            )

    def _check_after_kill(
        self, run_dir: Path, ids: dict[str, int], before: _Snapshot, trial: int
    ) -> int:
        """The calls this kill left in flight: accepted during the session, their attempt still
        ``submitting`` on disk. Each can be sent once more by a later session, so their sum over
        the kills bounds the duplicates. A call accepted for a row still ``pending`` on disk
        would be one sent before its intent was durable."""
        # Requests already on the wire when the process died still get accepted.
        time.sleep(0.15)
        accepted = {i: n for i, n in self.stack.accepted_ids().items() if i in ids}
        states = _row_states(run_dir, len(ids))
        in_flight = 0
        for identifier, count in accepted.items():
            state = states[ids[identifier]]
            if state is State.PENDING:
                self._violation(f"trial {trial}: row {ids[identifier]} was sent while pending")
            in_flight += state is State.SUBMITTING and count > before.accepted[identifier]
        return in_flight

    def _check_final(
        self, run_dir: Path, archive: Path, ids: dict[str, int], bound: int, trial: int
    ) -> None:
        rows = len(ids)
        self.report.items += rows
        with Ledger.open(run_dir, writable=False) as ledger:
            latest = ledger.latest(["input_location"])
            attempts = ledger.attempts()
        done = sum(
            state == State.SUCCEEDED.value and attempt == 1
            for state, attempt in zip(
                latest["state"].to_pylist(), latest["attempt"].to_pylist(), strict=True
            )
        )
        if latest.num_rows != rows or done != rows:
            self.report.items_lost += rows - done
            self._violation(f"trial {trial}: {rows - done} of {rows} rows did not succeed")
        self._check_history(archive, attempts, trial)
        accepted = Counter({i: n for i, n in self.stack.accepted_ids().items() if i in ids})
        missing = set(ids) - set(accepted)
        if missing:
            self._violation(f"trial {trial}: {len(missing)} inputs never reached the endpoint")
        duplicates = sum(accepted.values()) - len(accepted)
        self.report.calls += sum(accepted.values())
        self.report.duplicate_calls += duplicates
        self.report.duplicate_bound += bound
        if duplicates > bound:
            self._violation(
                f"trial {trial}: {duplicates} calls sent twice, more than the {bound} in "
                "flight at the kills"
            )
        self.log(
            f"trial {trial}: {len(self.report.kills)} kills so far; {done}/{rows} succeeded, "
            f"{duplicates} duplicate calls (bound {bound})"
        )

    def _check_history(self, archive: Path, now: Any, trial: int) -> None:
        import pyarrow as pa

        batches = sorted(archive.glob("b-*.parquet"))
        tables = [read_parquet(path, None, event_schema(), "archived batch") for path in batches]
        if not tables:
            self._violation(f"trial {trial}: no batch was ever written")
            return
        history = pa.concat_tables(tables)
        self.report.events_replayed += history.num_rows
        last: dict[tuple[int, int], State] = {}
        finals: Counter[tuple[int, int]] = Counter()
        for row, attempt, name in zip(
            history["row"].to_pylist(),
            history["attempt"].to_pylist(),
            history["state"].to_pylist(),
            strict=True,
        ):
            key, state = (row, attempt), State(name)
            try:
                check_transition(last.get(key, State.PENDING), state)
            except ValueError as error:
                self._violation(f"trial {trial}: row {row} attempt {attempt}: {error}")
            last[key] = state
            finals[key] += state.is_final
        wrong = {key: n for key, n in finals.items() if n != 1}
        if wrong:
            self._violation(
                f"trial {trial}: {len(wrong)} attempts have other than one final event "
                f"(first: {next(iter(wrong.items()))})"
            )
        if not fold(history).equals(now.select(history.column_names)):
            self._violation(f"trial {trial}: the ledger differs from the fold of its history")

    def _violation(self, text: str) -> None:
        self.report.violations.append(text)
        self.log(f"VIOLATION: {text}")


def _row_states(run_dir: Path, rows: int) -> dict[int, State]:
    states = dict.fromkeys(range(1, rows + 1), State.PENDING)
    if not Ledger.exists(run_dir):
        return states
    with Ledger.open(run_dir, writable=False) as ledger:
        latest = ledger.latest([])
    for row, name in zip(latest["row"].to_pylist(), latest["state"].to_pylist(), strict=True):
        states[row] = State(name)
    return states


def _has_batches(run_dir: Path) -> bool:
    try:
        return any(name.startswith("b-") for name in os.listdir(run_dir / "events"))
    except FileNotFoundError:
        return False


def _awaiting_results_only(run_dir: Path) -> bool:
    if not Ledger.exists(run_dir):
        return False
    try:
        with Ledger.open(run_dir, writable=False) as ledger:
            counts = ledger.counts()
    except LedgerError:
        # Read while the run writes: a listing may race a compaction; the next poll will do.
        return False
    waiting = counts[State.PENDING] + counts[State.SUBMITTING]
    return waiting == 0 and counts[State.SUBMITTED] > 0


def _interrupted(events: Path, pid: int) -> str | None:
    """What the kill cut short, from the temp files the killed process left behind."""
    try:
        names = [name for name in os.listdir(events) if name.endswith(f".{pid}.tmp")]
    except FileNotFoundError:
        return None
    if any(name.startswith(".c-") for name in names):
        return "compaction"
    if any(name.startswith(".b-") for name in names):
        return "write"
    return None


def _sleep_unless_exited(process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def _wait_for(
    condition: Callable[[], bool],
    process: subprocess.Popen[bytes],
    timeout: float,
    interval: float = 0.005,
) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline and not condition():
        time.sleep(interval)


@contextmanager
def _local_stack(settings: FuzzSettings) -> Iterator[LocalStack]:
    config = EmulatorConfig(
        workers=8,
        latency=settings.latency,
        seed=settings.seed,
        credentials={_KEY: CREDENTIALS["AWS_SECRET_ACCESS_KEY"]},
    )
    with start_local_stack([], config) as stack:
        yield stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = FuzzSettings()
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--items", type=int, default=defaults.items)
    parser.add_argument("--kills-per-trial", type=int, default=defaults.kills_per_trial)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--rate", type=float, default=defaults.rate)
    parser.add_argument("--latency", default=defaults.latency)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--compact-after",
        type=int,
        default=defaults.compact_after,
        help="Ledger.compact_after in the sessions (0: the ledger's own)",
    )
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    settings = FuzzSettings(
        kills=args.kills,
        items=args.items,
        kills_per_trial=args.kills_per_trial,
        concurrency=args.concurrency,
        rate=args.rate,
        latency=args.latency,
        seed=args.seed,
        compact_after=args.compact_after,
    )
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="crash-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update(CREDENTIALS)
    with _local_stack(settings) as stack:
        report = CrashFuzzer(settings, workdir, stack).run()
    figures = report.figures()
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    for violation in report.violations:
        print(f"VIOLATION: {violation}", file=sys.stderr)
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
