"""The ledger's journal: events that must be durable before the next batch is written.

A batch file costs a Parquet encoding and two fsyncs (a millisecond of CPU); an answer to a call
cannot wait for one without slowing every call slot. Such events are also appended, as one JSON
line each, to ``events/j-<seq>.jsonl``, where ``seq`` is the batch that will carry them; one
``fdatasync`` makes every line appended since the last one durable (a group commit). Once batch
``seq`` is durable, the journals up to ``seq`` are deleted. A writer that opens a run replays the
journals newer than its last batch into a batch of their own, so a crash loses none of their
events. Readers ignore journals: a run that crashed shows up to ``--concurrency`` accepted calls
as ``submitting`` until its next writer replays them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

from bulkinvoke.errors import LedgerCorrupt
from bulkinvoke.ledger.schema import Event
from bulkinvoke.states import State

_JOURNAL_FILE = re.compile(r"j-(\d{12})\.jsonl")
JOURNAL_RECOVERY = (
    "It holds calls answered since the last batch. To recover, move it out of the run directory "
    "and run `bulkinvoke resume`: those attempts are then in doubt, looked for in S3 and sent "
    "again with the same inference IDs if their output is not there."
)


def journal_name(seq: int) -> str:
    return f"j-{seq:012d}.jsonl"


def _line(event: Event) -> bytes:
    fields = {"row": event.row, "attempt": event.attempt, "state": event.state.value}
    for name in Event.__dataclass_fields__:
        value = getattr(event, name)
        if name not in fields and value is not None:
            fields[name] = value
    return (json.dumps(fields, separators=(",", ":")) + "\n").encode()


def _event(fields: dict[str, object]) -> Event:
    state = State(str(fields.pop("state")))
    return Event(state=state, **fields)  # type: ignore[arg-type]


class Journal:
    """The journals of one writable ledger. ``add`` is called under the ledger's buffer lock;
    ``write`` on a thread of its own, which it may share with nobody."""

    def __init__(self, events_dir: Path) -> None:
        self._dir = events_dir
        self._pending: list[tuple[int, Event]] = []
        self._guard = threading.Lock()
        # Held while descriptors are used or closed: a batch may release a journal meanwhile.
        self._io_guard = threading.Lock()
        self._files: dict[int, int] = {}  # seq -> open descriptor
        self._released_through = 0

    def add(self, seq: int, events: Iterable[Event]) -> None:
        with self._guard:
            self._pending.extend((seq, event) for event in events)

    def write(self) -> None:
        """Append every event added so far to its journal and make them durable; an OSError
        leaves the ones not yet written pending."""
        with self._guard:
            pending, self._pending = self._pending, []
        lines: dict[int, list[bytes]] = {}
        for seq, event in pending:
            lines.setdefault(seq, []).append(_line(event))
        try:
            with self._io_guard:
                for seq, chunk in lines.items():
                    if seq <= self._released_through:
                        continue  # its batch is durable already: nothing to add
                    fd = self._file(seq)
                    data = memoryview(b"".join(chunk))
                    while data:
                        data = data[os.write(fd, data) :]
                    os.fdatasync(fd)
        except OSError:
            with self._guard:
                self._pending[:0] = pending
            raise

    def release_through(self, seq: int) -> None:
        """Batch ``seq`` is durable: every journal up to it is carried by a batch."""
        with self._io_guard:
            self._released_through = max(self._released_through, seq)
            for old in [s for s in self._files if s <= seq]:
                os.close(self._files.pop(old))
        for old, path in list_journals(self._dir):
            if old <= seq:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def close(self) -> None:
        with self._io_guard:
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()

    def _file(self, seq: int) -> int:
        fd = self._files.get(seq)
        if fd is None:
            path = self._dir / journal_name(seq)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            # The new name must survive a power loss as its lines do.
            dir_fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._files[seq] = fd
        return fd


def list_journals(events_dir: Path) -> list[tuple[int, Path]]:
    found = []
    with os.scandir(events_dir) as entries:
        for entry in entries:
            match = _JOURNAL_FILE.fullmatch(entry.name)
            if match:
                found.append((int(match[1]), Path(entry.path)))
    return sorted(found)


def read_journal(path: Path) -> list[Event]:
    """The events of one journal, in order. A crash may have cut its last line short: that line
    was never durable, so it is left out; a bad line before it is damage."""
    lines = path.read_bytes().split(b"\n")
    events = []
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            events.append(_event(json.loads(line)))
        except (ValueError, TypeError) as error:
            if number == len(lines):  # no newline after it: the torn end of an append
                break
            raise LedgerCorrupt(
                f"{path} line {number} cannot be read ({error}). {JOURNAL_RECOVERY}"
            ) from None
    return events
