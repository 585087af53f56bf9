"""Faults and crashes injected into a real ``bulkinvoke`` process, at exact points of its ledger.

Python imports ``sitecustomize`` at startup by itself: putting this directory first on
PYTHONPATH reaches a subprocess that a test or benchmark only starts. Nothing happens unless one
of these variables is set.

Disk errors (a full disk without filling one)::

    BULKINVOKE_FAULT_OP      fsync or write: the os call that fails (default fsync)
    BULKINVOKE_FAULT_AT      N: the N-th such call made by bulkinvoke/ledger/files.py fails
    BULKINVOKE_FAULT_ERRNO   ENOSPC (default), EIO, EDQUOT...: the error it fails with
    BULKINVOKE_FAULT_ONCE    1: only the N-th call fails; otherwise every call from the N-th on

Crashes (SIGKILL sent by the process to itself, at the N-th time it reaches a point)::

    BULKINVOKE_CRASH_AT      POINT:N, POINT one of
                             batch-data     a batch's temp file is written, before its fsync
                             batch-renamed  a batch is renamed into place, before the dir fsync
                             compact-data   a compaction's temp file is written, before its fsync
                             compact-renamed  the c- file is in place, its batches not yet removed
                             compact-removing  an events file is about to be removed
                             create         a file of a new run (plan, run.json) is being written
    BULKINVOKE_CRASH_REPORT  a file to write POINT into just before dying, so the caller knows
                             the crash came from here

Observation and tuning::

    BULKINVOKE_ARCHIVE_DIR   hard-link every batch file into this directory as it is renamed
                             into place: compaction deletes batches, and a history check needs
                             every one of them
    BULKINVOKE_COMPACT_AFTER N: compact after N batches rather than Ledger.compact_after (64),
                             so that short runs compact, and crash, often
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from collections import Counter
from typing import Any

_LEDGER_IO = os.path.join("bulkinvoke", "ledger", "files.py")


def _from_ledger_io() -> bool:
    # Two frames up: the caller of the os function this module put in place.
    return sys._getframe(2).f_code.co_filename.endswith(_LEDGER_IO)


class _Injector:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fault_calls = 0
        self.points: Counter[str] = Counter()
        self.local = threading.local()
        fault_at = os.environ.get("BULKINVOKE_FAULT_AT")
        self.fault_at = int(fault_at) if fault_at else None
        self.fault_op = os.environ.get("BULKINVOKE_FAULT_OP", "fsync")
        self.fault_errno = getattr(errno, os.environ.get("BULKINVOKE_FAULT_ERRNO", "ENOSPC"))
        self.fault_once = os.environ.get("BULKINVOKE_FAULT_ONCE") == "1"
        crash = os.environ.get("BULKINVOKE_CRASH_AT")
        point, _, count = (crash or "").partition(":")
        self.crash_point = point or None
        self.crash_count = int(count or 1)
        self.crash_report = os.environ.get("BULKINVOKE_CRASH_REPORT")
        self.archive = os.environ.get("BULKINVOKE_ARCHIVE_DIR")
        self.original = {
            name: getattr(os, name) for name in ("fsync", "write", "replace", "unlink")
        }

    def install(self) -> None:
        os.fsync = self.fsync
        os.write = self.write
        os.replace = self.replace
        os.unlink = self.unlink
        compact_after = os.environ.get("BULKINVOKE_COMPACT_AFTER")
        if compact_after:
            from bulkinvoke.ledger.store import Ledger

            Ledger.compact_after = int(compact_after)

    # -- the os functions ------------------------------------------------------------------

    def fsync(self, fd: int) -> None:
        if _from_ledger_io():
            self._maybe_fail("fsync")
            self._reach(self._fsync_point(fd))
        self.original["fsync"](fd)

    def write(self, fd: int, data: Any) -> int:
        if _from_ledger_io():
            self._maybe_fail("write")
        return self.original["write"](fd, data)

    def replace(self, source: Any, target: Any, **kwargs: Any) -> None:
        if not _from_ledger_io():
            self.original["replace"](source, target, **kwargs)
            return
        self.local.renamed = os.path.basename(os.fspath(target))
        self.original["replace"](source, target, **kwargs)
        name = self.local.renamed
        if self.archive and name.startswith("b-"):
            os.link(target, os.path.join(self.archive, name))

    def unlink(self, path: Any, **kwargs: Any) -> None:
        text = os.fspath(path)
        name = os.path.basename(text)
        in_events = os.path.basename(os.path.dirname(text)) == "events"
        if in_events and name.startswith(("b-", "c-")):
            self._reach("compact-removing")
        self.original["unlink"](path, **kwargs)

    # -- what they do ----------------------------------------------------------------------

    def _fsync_point(self, fd: int) -> str | None:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        name = os.path.basename(target)
        if name.startswith(".b-"):
            return "batch-data"
        if name.startswith(".c-"):
            return "compact-data"
        if name.startswith((".plan", ".run.json")):
            return "create"
        if name == "events":
            renamed = getattr(self.local, "renamed", "")
            if renamed.startswith("b-"):
                return "batch-renamed"
            if renamed.startswith("c-"):
                return "compact-renamed"
        return None

    def _maybe_fail(self, op: str) -> None:
        if self.fault_at is None or op != self.fault_op:
            return
        with self.lock:
            self.fault_calls += 1
            n = self.fault_calls
        if n == self.fault_at or (n > self.fault_at and not self.fault_once):
            raise OSError(self.fault_errno, os.strerror(self.fault_errno))

    def _reach(self, point: str | None) -> None:
        if point is None or point != self.crash_point:
            return
        with self.lock:
            self.points[point] += 1
            due = self.points[point] == self.crash_count
        if due:
            if self.crash_report:
                with open(self.crash_report, "w") as report:
                    report.write(point)
            os.kill(os.getpid(), signal.SIGKILL)


if any(
    os.environ.get(name)
    for name in (
        "BULKINVOKE_FAULT_AT",
        "BULKINVOKE_CRASH_AT",
        "BULKINVOKE_ARCHIVE_DIR",
        "BULKINVOKE_COMPACT_AFTER",
    )
):
    _Injector().install()
