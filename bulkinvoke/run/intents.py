"""Intents written ahead of their calls: an attempt's ``submitting`` event is durable before the
call is sent (the in-progress record of an idempotency store).

Intents are recorded for a chunk of attempts at a time, so that one fsync covers many calls, and
the next chunk's are recorded while this one's calls go out: sending waits for the disk only
when it outruns it.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Collection, Iterable

from bulkinvoke.calls.invoker import Call
from bulkinvoke.ledger.background import BackgroundWriter
from bulkinvoke.ledger.schema import Event
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.states import State

MAX_CHUNK = 1000


def intent_chunk(concurrency: int, max_rate: float | None) -> int:
    """Attempts whose intents one write carries: twice the slots, and at most a quarter of a
    second of calls at ``max_rate`` (a write per chunk costs little next to the calls)."""
    chunk = max(2 * concurrency, 32)
    if max_rate is not None:
        chunk = min(chunk, max(int(max_rate / 4), 8))
    return min(chunk, MAX_CHUNK)


class IntentWriter:
    """Moves attempts from ``work`` to ``ready`` once their intents are durable.

    ``chunk_size`` says how many attempts the next chunk holds; ``on_recorded(n)`` is told how
    many of a chunk's attempts became ``submitting`` that were ``pending`` (the others were in
    doubt, and counted as submitting already).
    """

    def __init__(
        self,
        ledger: Ledger,
        writer: BackgroundWriter,
        work: deque[Call],
        *,
        in_doubt: Collection[tuple[int, int]],
        chunk_size: Callable[[], int],
        on_recorded: Callable[[int], None],
        clock: Callable[[], float],
    ) -> None:
        self._ledger = ledger
        self._writer = writer
        self._work = work
        self._in_doubt = in_doubt
        self._chunk_size = chunk_size
        self._on_recorded = on_recorded
        self._clock = clock
        # Attempts at the head of the work whose intents are recorded, and whether a write that
        # includes them has started: the next periodic write usually carries them.
        self._ahead = 0
        self._ahead_in_write = False
        # Attempts whose intents are recorded and counted, not yet handed to a slot: what a
        # stopping run may take back. Filled only once a chunk is counted and emptied as calls
        # are handed out, so that an interrupt between two steps leaves an attempt in doubt
        # (safe) rather than taken back twice or while it may be sent.
        self._intended: dict[tuple[int, int], Call] = {}

    def write_started(self) -> None:
        """A write of every event recorded so far has started (it carries the intents ahead)."""
        self._ahead_in_write = True

    def reserve(self, ready: deque[Call]) -> bool:
        """Move the next chunk of attempts to ``ready`` once their intents are durable, and
        record the intents of the chunk after it; False when no work is left."""
        if not self._ahead:
            self._record_chunk()
        if not self._ahead:
            return False
        if not self._ahead_in_write:
            self._writer.start()
        self._writer.wait()
        for _ in range(self._ahead):
            ready.append(self._work.popleft())
        self._ahead = 0
        self._record_chunk()
        return True

    def handed_out(self, call: Call) -> None:
        """``call`` goes to a slot: from now on it may be sent."""
        self._intended.pop((call.row, call.attempt), None)

    def withdraw(self, unsent: Iterable[Call]) -> int:
        """The run stops: record ``pending`` again for the attempts whose intents are written but
        whose calls were never handed out, and for ``unsent`` (handed out, but a slot was told
        not to send them), so that they are not in doubt. Attempts in doubt from before stay
        so: an earlier session may have sent them. How many went back (their count moves from
        submitting to pending)."""
        now = self._clock()
        calls = {**self._intended, **{(call.row, call.attempt): call for call in unsent}}
        self._intended = {}
        withdrawn = 0
        for key, call in calls.items():
            if key in self._in_doubt:
                continue
            self._ledger.record(
                Event(call.row, call.attempt, State.PENDING, now, inference_id=call.inference_id)
            )
            withdrawn += 1
        return withdrawn

    def _record_chunk(self) -> None:
        now = self._clock()
        fresh = 0
        self._ahead = min(self._chunk_size(), len(self._work))
        chunk = list(itertools.islice(self._work, self._ahead))
        for call in chunk:
            self._ledger.record(
                Event(call.row, call.attempt, State.SUBMITTING, now, inference_id=call.inference_id)
            )
            fresh += (call.row, call.attempt) not in self._in_doubt
        self._on_recorded(fresh)
        self._intended.update(((call.row, call.attempt), call) for call in chunk)
        self._ahead_in_write = False
