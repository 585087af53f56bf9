"""How many calls the engine hands to its call slots, how many intents one write carries, and how
long its thread may let results gather: policies of the engine's loop, as pure functions of what
it has seen (so they are tested without a run).
"""

from __future__ import annotations

from bulkinvoke.run.intents import MAX_CHUNK, intent_chunk
from bulkinvoke.run.slots import DEFAULT_CONCURRENCY, SlotSizer

MAX_GATHER_S = 0.01


class DispatchPolicy:
    def __init__(
        self, concurrency: int, *, max_rate: float | None, sized_for_rate: float | None
    ) -> None:
        self.concurrency = concurrency
        self._max_rate = max_rate
        self._chunk = intent_chunk(concurrency, max_rate)
        self.sizer = (
            SlotSizer(
                sized_for_rate,
                initial=min(DEFAULT_CONCURRENCY, concurrency),
                maximum=concurrency,
            )
            if sized_for_rate is not None
            else None
        )

    def limit(self, paced: bool) -> int:
        """The most calls handed over and not yet answered. Unpaced, as many calls again wait in
        the pool's queue: a slot that finishes a call takes the next at once rather than wait
        for the engine's thread, which can then let results gather. Paced calls are handed over
        only when due, so pacing holds; the pool's threads start as they are needed, so slots
        sized for the rate never exceed the pool."""
        if self.sizer is not None:
            return self.sizer.slots()
        return self.concurrency if paced else 2 * self.concurrency

    def chunk_size(self, submitted: int, elapsed_s: float) -> int:
        """Intents per write. Without a rate limit, a quarter of a second of calls at the rate
        seen so far: at hundreds of calls a second a write of 32 intents each time costs more
        CPU than a call."""
        if self._max_rate is not None:
            return self._chunk
        seen = submitted / elapsed_s if elapsed_s > 0 else 0.0
        return min(max(self._chunk, int(seen / 4)), MAX_CHUNK)

    def gather_s(self, in_progress: int, submitted: int, elapsed_s: float) -> float:
        """While calls wait in the pool's queue the slots need nothing from the engine's thread:
        it may let results gather for up to half the time those calls take, so that one wakeup
        applies many results rather than each its own (a wakeup costs CPU that a GIL shared with
        the slots turns into a slower run)."""
        queued = in_progress - self.concurrency
        if queued <= 0 or not submitted or elapsed_s <= 0:
            return 0.0
        return min(queued * elapsed_s / submitted / 2, MAX_GATHER_S)
