"""The run's ledger: a Parquet event log under RUN_DIR (layout in docs/ARCHITECTURE.md).

The ledger is the truth: the runner records events, flushes, and only then acts on them. A flush
writes the buffered events as one ``b-`` file (temp file, fsync, rename, fsync of the directory),
so a crash at any instant leaves every flushed batch whole and no partial one visible. Compaction
folds the batches into one ``c-`` file so that reading stays fast. One process at a time writes a
run (an flock on RUN_DIR/lock); readers take no lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bulkinvoke.errors import LedgerError, LedgerWriteError, RunExists
from bulkinvoke.ledger.files import (
    COMPACTION_RECOVERY,
    CONFIG_NAME,
    DUPLICATES_NAME,
    EVENTS_DIR,
    PLAN_NAME,
    PLAN_RECOVERY,
    EventFiles,
    RunLock,
    batch_name,
    check_plan_file,
    compaction_name,
    config_bytes,
    create_run_files,
    list_event_files,
    read_config,
    remove_quietly,
    write_durably,
)
from bulkinvoke.ledger.journal import Journal, list_journals, read_journal
from bulkinvoke.ledger.schema import (
    EVENT_COLUMNS,
    KEY,
    Event,
    batch_bytes,
    checked_plan,
    compaction_bytes,
    concat_events,
    event_schema,
    events_to_table,
    fold,
    listed_event_files,
    plan_bytes,
    read_event_files,
    read_parquet,
)
from bulkinvoke.ledger.views import (
    count_states,
    duplicates_table,
    latest_of,
)
from bulkinvoke.states import State

if TYPE_CHECKING:
    import pyarrow as pa

_READ_ATTEMPTS = 5


class Ledger:
    """The ledger of one run directory, open for writing (locked) or read-only.

    ``record`` buffers events in memory and ``flush`` makes the buffer durable; the reading
    methods see durable events only, never the buffer. A writer calls ``maybe_compact`` after
    each flush. Methods may be called from several threads: flushes are serialised, and a
    compaction in one thread does not hold up flushes in another.
    """

    # maybe_compact waits for more than compact_after batches, and further while they are small
    # next to the compacted file (under 1/compact_ratio of it), so that a long run rewrites its
    # history a bounded number of times; at compact_always_after it compacts regardless, to
    # keep readers from opening too many files.
    compact_after = 64
    compact_ratio = 8
    compact_always_after = 1024

    def __init__(self, run_dir: Path, config: dict[str, Any], lock: RunLock | None) -> None:
        self.run_dir = run_dir
        self.config = config
        self._lock = lock
        self._writable = lock is not None
        self._events_dir = run_dir / EVENTS_DIR
        self._buffer: list[Event] = []
        self._buffer_guard = threading.Lock()
        self._write_guard = threading.Lock()
        self._compact_guard = threading.Lock()
        self._next_seq = 1
        self._batch_sizes: dict[int, int] = {}
        # The tables this process flushed since the last compaction, which compaction would
        # otherwise read back: a thousand small files cost more to read than to keep.
        self._written: dict[int, pa.Table] = {}
        self._compacted_size = 0
        self._journal = Journal(self._events_dir) if lock is not None else None

    @classmethod
    def create(
        cls,
        run_dir: Path,
        config: dict[str, Any],
        plan: pa.Table,
        duplicates: pa.Table | None = None,
    ) -> Ledger:
        """Start a run in ``run_dir`` (made 0700) and return its ledger, open for writing.
        ``duplicates`` (``row``, ``first_row``) lists the manifest rows that repeat an earlier
        row's input and are not in the plan."""
        run_dir = Path(run_dir)
        if cls.exists(run_dir):
            raise RunExists(
                f"{run_dir} already holds a run: resume it, or choose another directory"
            )
        plan = checked_plan(plan)
        repeats = plan_bytes(duplicates) if duplicates is not None and duplicates.num_rows else None
        lock = create_run_files(run_dir, plan_bytes(plan), repeats, config_bytes(config))
        return cls(run_dir, dict(config), lock)

    @classmethod
    def open(cls, run_dir: Path, *, writable: bool = True) -> Ledger:
        run_dir = Path(run_dir)
        if not cls.exists(run_dir):
            raise LedgerError(f"{run_dir} is not a bulkinvoke run directory (no {CONFIG_NAME})")
        lock = RunLock.acquire(run_dir) if writable else None
        try:
            ledger = cls(run_dir, read_config(run_dir / CONFIG_NAME), lock)
            check_plan_file(run_dir / PLAN_NAME)
            if writable:
                ledger._prepare_writing()
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return ledger

    @staticmethod
    def exists(run_dir: Path) -> bool:
        return (Path(run_dir) / CONFIG_NAME).is_file()

    def save_config(self, config: dict[str, Any]) -> None:
        self._check_writable()
        path = self.run_dir / CONFIG_NAME
        data = config_bytes(config)
        try:
            write_durably(path, data)
        except OSError as exc:
            raise LedgerWriteError(f"cannot write {path}: {exc}") from exc
        self.config = dict(config)

    def plan(self, columns: list[str] | None = None) -> pa.Table:
        path = self.run_dir / PLAN_NAME
        try:
            return read_parquet(path, columns, None, PLAN_RECOVERY)
        except FileNotFoundError:
            raise LedgerError(f"{path} is missing. {PLAN_RECOVERY}") from None

    def duplicates(self) -> pa.Table:
        """The manifest rows that repeat an earlier row's input: ``row``, ``first_row``."""
        path = self.run_dir / DUPLICATES_NAME
        if not path.is_file():
            return duplicates_table([], [])
        return read_parquet(path, ["row", "first_row"], None, PLAN_RECOVERY)

    def record(self, event: Event) -> None:
        self.record_many((event,))

    def record_many(self, events: Iterable[Event], *, journaled: bool = False) -> None:
        """Buffer ``events`` for the next batch; ``journaled`` ones also for the journal, which
        ``write_journal`` makes durable sooner (see ``bulkinvoke.ledger.journal``)."""
        self._check_writable()
        batch = list(events)
        for event in batch:
            if not isinstance(event, Event):
                raise TypeError(f"a ledger records Events, not {type(event).__name__}")
        with self._buffer_guard:
            self._buffer.extend(batch)
            if journaled and self._journal is not None:
                self._journal.add(self._next_seq, batch)

    def write_journal(self) -> None:
        """Make every journaled event recorded so far durable (one fdatasync per journal)."""
        self._check_writable()
        assert self._journal is not None
        try:
            self._journal.write()
        except OSError as exc:
            raise LedgerWriteError(
                f"cannot write the journal in {self._events_dir} ({exc}); the ledger on disk is "
                "unharmed"
            ) from exc

    def flush(self) -> None:
        """Make every buffered event durable as one batch file; on failure they stay buffered."""
        self._check_writable()
        with self._write_guard:
            # A failed write may have renamed its file into place (if only the directory's fsync
            # failed), so its seq is never reused; the retry then repeats those events, which the
            # fold absorbs because everything recorded after them is repeated after them too.
            # Taken with the buffer, so that a journaled event names the batch that carries it.
            with self._buffer_guard:
                batch = list(self._buffer)
                if not batch:
                    return
                seq = self._next_seq
                self._next_seq += 1
            table = events_to_table(batch)
            data = batch_bytes(table)
            path = self._events_dir / batch_name(seq)
            try:
                write_durably(path, data)
            except OSError as exc:
                raise LedgerWriteError(
                    f"cannot write {path} ({exc}); the ledger on disk is unharmed and its "
                    f"{len(batch)} new events stay buffered for the next flush"
                ) from exc
            self._batch_sizes[seq] = data.size
            if len(self._written) < self.compact_always_after:
                self._written[seq] = table
            with self._buffer_guard:
                del self._buffer[: len(batch)]
            if self._journal is not None:
                self._journal.release_through(seq)

    @property
    def pending_events(self) -> int:
        return len(self._buffer)

    def attempts(self, columns: list[str] | None = None) -> pa.Table:
        """The folded attempts: one row per (row, attempt), sorted by both, from the durable
        events only (not those still buffered). ``columns`` picks event columns besides the
        key; fewer columns read faster."""
        if columns is not None:
            unknown = set(columns) - set(EVENT_COLUMNS)
            if unknown:
                raise ValueError(f"not event columns: {sorted(unknown)}")
            columns = list(dict.fromkeys([*KEY, *columns]))
        return fold(concat_events(self._read_events(columns)[1], columns))

    def latest(self, plan_columns: list[str] | None = None) -> pa.Table:
        """One row per manifest row, in plan order: the plan's columns (``plan_columns``, default
        all), then the columns of the row's latest attempt, ``attempt`` being their number (0 for
        a row never tried, whose ``state`` is ``pending``). A plan column named like an event
        column gets the prefix ``plan_`` (the row's own ``inference_id`` becomes
        ``plan_inference_id``)."""
        if plan_columns is not None:
            plan_columns = list(dict.fromkeys(["row", *plan_columns]))
        return latest_of(self.attempts(), self.plan(plan_columns), self._events_dir)

    def counts(self) -> dict[State, int]:
        """How many manifest rows are in each state (that of their latest attempt; a row never
        tried is pending). Reads only the key and state columns."""
        files, tables = self._read_events([*KEY, "state"], dictionary=["state"])
        paths = [path for _, path in listed_event_files(files)]
        plan_rows = self.plan(["row"])["row"].to_numpy()
        return count_states(tables, paths, plan_rows, self._events_dir)

    def compact(self) -> None:
        """Fold the newest ``c-`` file and the batches after it into a new ``c-`` file."""
        self._check_writable()
        with self._compact_guard:
            # Listing under the write guard means no flush is half done: a batch listed later
            # than a missing earlier one would otherwise end up below the new c- file, unread.
            with self._write_guard:
                files = list_event_files(self._events_dir)
            if not files.batches:
                return
            data = compaction_bytes(self._fold_files(files))
            last_seq = files.batches[-1][0]
            target = self._events_dir / compaction_name(last_seq)
            try:
                write_durably(target, data)
            except OSError as exc:
                raise LedgerWriteError(
                    f"cannot write {target} ({exc}); the ledger is unharmed, its batches stay"
                ) from exc
            # The old c- file goes last: a reader that lists the directory meanwhile and still
            # sees it then sees every batch it needs, or finds one gone and reads again.
            remove_quietly([path for _, path in files.batches] + files.stale)
            if files.compaction is not None:
                remove_quietly([files.compaction[1]])
            with self._write_guard:
                self._compacted_size = data.size
                for seq in [s for s in self._batch_sizes if s <= last_seq]:
                    del self._batch_sizes[seq]
                    self._written.pop(seq, None)

    def maybe_compact(self) -> bool:
        """Compact if enough batches have piled up (see ``compact_after``); cheap otherwise."""
        with self._write_guard:
            count = len(self._batch_sizes)
            size = sum(self._batch_sizes.values())
        if count <= self.compact_after or self._compact_guard.locked():
            return False
        small = size * self.compact_ratio < self._compacted_size
        if small and count < self.compact_always_after:
            return False
        self.compact()
        return True

    def close(self) -> None:
        """Flush and release the lock; closing twice is harmless."""
        try:
            if self._lock is not None:
                self.flush()
        finally:
            if self._journal is not None:
                self._journal.close()
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "writable" if self._lock is not None else "read-only"
        return f"<Ledger {self.run_dir} {mode}>"

    def _check_writable(self) -> None:
        if self._lock is None:
            state = "closed" if self._writable else "open read-only"
            raise LedgerError(f"the ledger of {self.run_dir} is {state}")

    def _prepare_writing(self) -> None:
        files = list_event_files(self._events_dir)
        if files.compaction is not None:
            # Leftover batches below an unreadable c- file may be all that is left of its history.
            _, path = files.compaction
            read_parquet(path, list(KEY), event_schema(), COMPACTION_RECOVERY)
            self._compacted_size = path.stat().st_size
        remove_quietly(files.stale + files.temps)
        self._next_seq = files.last_seq + 1
        self._batch_sizes = {seq: path.stat().st_size for seq, path in files.batches}
        self._replay_journals(files.last_seq)

    def _replay_journals(self, last_seq: int) -> None:
        """Write the events of the journals newer than the last batch (answers a crash left
        only there) as a batch of their own; then no journal is left."""
        journals = list_journals(self._events_dir)
        events = [e for seq, path in journals if seq > last_seq for e in read_journal(path)]
        if events:
            self._buffer.extend(events)
            self.flush()
        remove_quietly([path for _, path in journals])

    def _read_events(
        self, columns: list[str] | None, dictionary: Sequence[str] = ()
    ) -> tuple[EventFiles, list[pa.Table]]:
        for _ in range(_READ_ATTEMPTS):
            files = list_event_files(self._events_dir)
            try:
                tables = read_event_files(files, columns, dictionary)
            except FileNotFoundError:
                continue  # a compaction replaced files while they were being read
            # A directory listing is no snapshot: one taken while a compaction removed files may
            # mix before and after, and then some of its files are gone by now.
            if all(path.exists() for _, path in listed_event_files(files)):
                return files, tables
        raise LedgerError(f"the ledger of {self.run_dir} kept changing while it was read")

    def _fold_files(self, files: EventFiles) -> pa.Table:
        """The fold of ``files``, taking the batches this process wrote from memory."""
        cached = {seq: self._written[seq] for seq, _ in files.batches if seq in self._written}
        unread = [(seq, path) for seq, path in files.batches if seq not in cached]
        to_read = EventFiles(files.compaction, unread, [], [], files.last_seq)
        try:
            read = dict(
                zip(listed_event_files(to_read), read_event_files(to_read, None), strict=True)
            )
        except FileNotFoundError as exc:
            raise LedgerError(f"{exc.filename} vanished while being compacted") from exc
        tables = [
            read[item] if item in read else cached[item[0]] for item in listed_event_files(files)
        ]
        return fold(concat_events(tables, None))
