"""The ledger's batch writes, journal commits and compactions, on threads of their own.

The engine thread records events and goes on sending while a write is under way; it waits for one
only when it needs events durable (the intents of the calls it is about to hand out, and at the
end). Each write carries every event recorded before it started, and a failed write's events stay
buffered for the next, whose error the next wait raises. Notification receipts are acknowledged
only once the write carrying their news is durable.

A call slot records its answer with ``record_durably``, which returns once the answer is in the
journal: the journal thread commits every answer recorded meanwhile with one fdatasync (a group
commit), so the slots that finished together wait for one disk write, not one each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from bulkinvoke.errors import LedgerWriteError
from bulkinvoke.ledger.schema import Event
from bulkinvoke.ledger.store import Ledger


class BackgroundWriter:
    def __init__(
        self,
        ledger: Ledger,
        *,
        flush_interval: float,
        on_durable: Callable[[list[str]], None] | None,
        warn: Callable[[str], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._flush_interval = flush_interval
        self._on_durable = on_durable
        self._warn = warn
        self._monotonic = monotonic
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="ledger-write")
        self._compactions = ThreadPoolExecutor(1, thread_name_prefix="compact")
        self._write: Future[None] | None = None
        self._compaction: Future[bool] | None = None
        # Receipts whose news is recorded but in no write yet, and those the latest write carries.
        self._receipts_to_flush: list[str] = []
        self._receipts_in_write: list[str] = []
        self._last_start = monotonic()
        self._commit_wanted = threading.Condition()
        self._committers: list[threading.Event] = []
        self._closing = False
        self._journal_error: LedgerWriteError | None = None
        self._journal_thread = threading.Thread(
            target=self._commit_journal, name="ledger-journal", daemon=True
        )
        self._journal_thread.start()

    def record_durably(self, events: Sequence[Event]) -> None:
        """Record ``events`` and return once they are durable (in the journal); raises the
        journal's LedgerWriteError if they cannot be made so."""
        committed = threading.Event()
        with self._commit_wanted:
            if self._journal_error is not None:
                raise self._journal_error
            self._ledger.record_many(events, journaled=True)
            self._committers.append(committed)
            self._commit_wanted.notify()
        committed.wait()
        if self._journal_error is not None:
            raise self._journal_error

    def _commit_journal(self) -> None:
        while True:
            with self._commit_wanted:
                while not self._committers and not self._closing:
                    self._commit_wanted.wait()
                if not self._committers:
                    return
                # Every event of these committers was recorded before they were listed.
                committers, self._committers = self._committers, []
            try:
                self._ledger.write_journal()
            except LedgerWriteError as error:
                self._journal_error = error
            for committed in committers:
                committed.set()

    def acknowledge_when_durable(self, receipts: list[str]) -> None:
        self._receipts_to_flush.extend(receipts)

    def start(self) -> None:
        """Write every event recorded so far, on the writer thread."""
        self._receipts_in_write.extend(self._receipts_to_flush)
        self._receipts_to_flush = []
        self._write = self._writes.submit(self._ledger.flush)
        self._last_start = self._monotonic()

    def wait(self, *, compact: bool = True) -> None:
        """Wait for the writes started so far; raise the error of the latest. Then, with
        ``compact``, let a compaction start if none is under way."""
        if self._write is None:
            return
        self._write.result()
        self._write = None
        if self._on_durable is not None and self._receipts_in_write:
            self._on_durable(self._receipts_in_write)
        self._receipts_in_write = []
        if not compact:
            return
        # Compacting a large ledger takes a second or more: off the engine thread.
        if self._compaction is None or self._compaction.done():
            if self._compaction is not None and self._compaction.exception() is not None:
                self._warn(f"compacting the ledger: {self._compaction.exception()}")
            self._compaction = self._compactions.submit(self._ledger.maybe_compact)

    def flush(self, *, compact: bool = True) -> None:
        """Make every event recorded so far durable, and wait for it."""
        self.start()
        self.wait(compact=compact)

    def flush_if_due(self) -> bool:
        """Finish a write that is done, and start one if events wait and the flush interval has
        passed; whether one was started."""
        if self._write is not None:
            if not self._write.done():
                return False
            self.wait()
        if self._ledger.pending_events and (
            self._monotonic() - self._last_start >= self._flush_interval
        ):
            self.start()
            return True
        return False

    def close(self) -> None:
        """Let a compaction under way finish, then write what is left and wait for it."""
        with self._commit_wanted:
            self._closing = True
            self._commit_wanted.notify()
        self._journal_thread.join()
        self._compactions.shutdown(wait=True)
        try:
            self.flush(compact=False)
        finally:
            self._writes.shutdown(wait=True)
