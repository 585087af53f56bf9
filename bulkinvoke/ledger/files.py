"""The ledger's files on disk: the run lock, durable writes, and the listing of event files.

Nothing here imports pyarrow at module level, so that opening a module of the core stays cheap.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkinvoke.errors import LedgerCorrupt, LedgerError, LedgerLocked, LedgerWriteError, RunExists

if TYPE_CHECKING:
    import pyarrow as pa

CONFIG_NAME = "run.json"
PLAN_NAME = "plan.parquet"
# Manifest rows that repeat an earlier row's input: (row, first_row); absent if there are none.
DUPLICATES_NAME = "duplicates.parquet"
# With --stage: the records' other columns, by manifest row (``row`` first).
RECORDS_NAME = "records.parquet"
# Written beside the plan when they apply, never changed after: mirrored and merged with it.
PLAN_COMPANIONS = (DUPLICATES_NAME, RECORDS_NAME)
EVENTS_DIR = "events"
LOCK_NAME = "lock"

BATCH_RECOVERY = (
    "It holds one batch of events. To recover, move it out of the run directory and run "
    "`bulkinvoke resume`: the attempts it recorded are checked against S3 again, and those it "
    "alone knew of are sent again, with the same inference IDs and output locations."
)
COMPACTION_RECOVERY = (
    "It holds the compacted history of the run: restore it from a backup if there is one. "
    "Moving it aside makes the ledger forget every attempt it recorded, so `bulkinvoke resume` "
    "would send those rows again (with the same inference IDs and output locations)."
)
PLAN_RECOVERY = (
    "The run cannot continue from this directory; start a new run (outputs already in S3 keep "
    "their locations)."
)
_EVENT_FILE = re.compile(r"([bc])-(\d{12})\.parquet")
# Temp files start with a dot and end in .tmp, so no glob or pattern for live files can match one.
_TEMP_FILE = re.compile(r"\..+\.tmp")


def batch_name(seq: int) -> str:
    return f"b-{seq:012d}.parquet"


def compaction_name(seq: int) -> str:
    return f"c-{seq:012d}.parquet"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes | pa.Buffer) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old file or the new one.

    Raises ``OSError`` with no temp file left behind. If only the final fsync of the directory
    fails, the new file is already in place: callers must treat that as "maybe written".
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def remove_quietly(paths: list[Path]) -> None:
    # Leftovers are harmless to readers (see EventFiles), so failing to remove one is no error.
    for path in paths:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            path.unlink()


class RunLock:
    """An exclusive ``flock`` on RUN_DIR/lock, whose content is the holder's PID.

    flock belongs to the open file, so the kernel drops it when the holder dies, however it dies.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run_dir: Path) -> RunLock:
        path = run_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise LedgerError(f"cannot open the lock file {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"PID {holder}" if holder else "PID unknown"
            raise LedgerLocked(
                f"the run directory {run_dir} is in use by another bulkinvoke process ({who}); "
                "wait for it to finish or stop it (a process that dies releases the lock)"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise LedgerError(f"cannot lock {path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True, slots=True)
class EventFiles:
    """The event files of a run as the reader rule sees them.

    ``compaction`` is the newest ``c-`` file and ``batches`` the ``b-`` files after it in seq
    order (gaps allowed: a batch moved aside leaves one). ``stale`` are leftovers of interrupted
    writes and compactions, which readers ignore and a writer removes. ``last_seq`` is the highest
    seq present, 0 when there is none.
    """

    compaction: tuple[int, Path] | None
    batches: list[tuple[int, Path]]
    stale: list[Path]
    temps: list[Path]
    last_seq: int


def list_event_files(events_dir: Path) -> EventFiles:
    found: dict[str, list[tuple[int, Path]]] = {"b": [], "c": []}
    temps: list[Path] = []
    try:
        with os.scandir(events_dir) as entries:
            for entry in entries:
                match = _EVENT_FILE.fullmatch(entry.name)
                if match:
                    found[match[1]].append((int(match[2]), Path(entry.path)))
                elif _TEMP_FILE.fullmatch(entry.name):
                    temps.append(Path(entry.path))
    except FileNotFoundError:
        raise LedgerError(
            f"{events_dir} is missing: this run directory has lost its events"
        ) from None
    batches = sorted(found["b"])
    compactions = sorted(found["c"])
    newest = compactions[-1] if compactions else None
    cut = newest[0] if newest else 0
    return EventFiles(
        compaction=newest,
        batches=[(seq, path) for seq, path in batches if seq > cut],
        stale=[path for seq, path in batches if seq <= cut] + [p for _, p in compactions[:-1]],
        temps=temps,
        last_seq=max(cut, batches[-1][0] if batches else 0),
    )


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse a directory holding anything but the leftovers of an interrupted create."""
    if (run_dir / CONFIG_NAME).is_file():
        raise RunExists(f"{run_dir} already holds a run: resume it, or choose another directory")
    events_dir = run_dir / EVENTS_DIR
    if events_dir.is_dir() and any(events_dir.iterdir()):
        raise RunExists(f"{run_dir} has events but no {CONFIG_NAME}: it is a damaged run")
    expected = {CONFIG_NAME, PLAN_NAME, *PLAN_COMPANIONS, EVENTS_DIR, LOCK_NAME}
    foreign = sorted(
        p.name
        for p in run_dir.iterdir()
        if p.name not in expected and not _TEMP_FILE.fullmatch(p.name)
    )
    if foreign:
        raise LedgerError(f"{run_dir} is not empty (it has {foreign[0]}): choose a new directory")


def config_bytes(config: dict[str, Any]) -> bytes:
    return (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_bytes())
    except OSError as exc:
        raise LedgerError(f"cannot read {path}: {exc}") from exc
    except ValueError as exc:
        raise LedgerCorrupt(
            f"{path} is not valid JSON ({exc}); it holds the run's configuration and must be "
            "restored before the run can be resumed"
        ) from exc
    if not isinstance(config, dict):
        raise LedgerCorrupt(f"{path} does not hold a JSON object: restore the run's configuration")
    return config


def check_plan_file(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise LedgerError(f"{path} is missing. {PLAN_RECOVERY}")
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise LedgerCorrupt(f"{path} cannot be read ({exc}). {PLAN_RECOVERY}") from exc
    if "row" not in names or "input_location" not in names:
        raise LedgerCorrupt(f"{path} is not a bulkinvoke plan. {PLAN_RECOVERY}")


def create_run_files(
    run_dir: Path, plan: bytes | pa.Buffer, duplicates: bytes | pa.Buffer | None, config: bytes
) -> RunLock:
    """Make ``run_dir`` (0700) a new run: its plan, duplicates and run.json, durably; return its
    lock, held."""
    try:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(run_dir, 0o700)
    except OSError as exc:
        raise LedgerWriteError(f"cannot create the run directory {run_dir}: {exc}") from exc
    lock = RunLock.acquire(run_dir)
    try:
        check_new_run_dir(run_dir)
        (run_dir / EVENTS_DIR).mkdir(mode=0o700, exist_ok=True)
        write_durably(run_dir / PLAN_NAME, plan)
        if duplicates is not None:
            write_durably(run_dir / DUPLICATES_NAME, duplicates)
        # run.json comes last: until it exists the directory is no run, and create may retry.
        write_durably(run_dir / CONFIG_NAME, config)
    except OSError as exc:
        lock.release()
        raise LedgerWriteError(f"cannot create the run in {run_dir}: {exc}") from exc
    except BaseException:
        lock.release()
        raise
    return lock
