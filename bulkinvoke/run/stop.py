"""When a run stops before its work is done, as small values (in the manner of tenacity's ``stop``).

A :class:`StopCondition` looks at a :class:`Tally` of the run's failures and gives the reason to
stop, or None; conditions compose with ``|``. The engine keeps the tally and asks its policy after
every failure; the deadline of ``--timeout`` is a :class:`Deadline` on an injected clock.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tally:
    """What the stop conditions look at."""

    unsuccessful: int = 0  # items failed, expired or rejected so far (this run, all sessions)
    failed_in_a_row: int = 0  # calls in a row that failed after every retry
    last_error: str | None = None  # the error of the latest failed call


class StopCondition(ABC):
    @abstractmethod
    def reason(self, tally: Tally) -> str | None:
        """Why the run must stop now, or None."""

    def __or__(self, other: StopCondition) -> StopCondition:
        return StopAny((self, other))


@dataclass(frozen=True)
class StopAny(StopCondition):
    """The first of ``conditions`` that gives a reason."""

    conditions: tuple[StopCondition, ...]

    def reason(self, tally: Tally) -> str | None:
        return next((r for c in self.conditions if (r := c.reason(tally)) is not None), None)


@dataclass(frozen=True)
class StopNever(StopCondition):
    def reason(self, tally: Tally) -> str | None:
        return None


@dataclass(frozen=True)
class StopAfterFailures(StopCondition):
    """``--max-failures``: more than ``limit`` items unsuccessful."""

    limit: int

    def reason(self, tally: Tally) -> str | None:
        if tally.unsuccessful > self.limit:
            return f"{tally.unsuccessful} items failed, more than --max-failures allows"
        return None


@dataclass(frozen=True)
class StopAfterFailureStreak(StopCondition):
    """A dead network or a wrong region makes every call exhaust its retries: after ``limit``
    in a row, stop (resumably) rather than mark a million items failed."""

    limit: int

    def reason(self, tally: Tally) -> str | None:
        if tally.failed_in_a_row >= self.limit:
            return (
                f"{tally.failed_in_a_row} calls in a row failed after every retry "
                f"(last: {tally.last_error})"
            )
        return None


def failure_streak_limit(concurrency: int) -> int:
    # Every slot failing twice over: one bad input per slot is no streak.
    return max(2 * concurrency, 20)


def stop_policy(max_failures: int | None, concurrency: int) -> StopCondition:
    """The run's policy: the failure streak, and ``--max-failures`` if given."""
    streak = StopAfterFailureStreak(failure_streak_limit(concurrency))
    return streak if max_failures is None else streak | StopAfterFailures(max_failures)


class Deadline:
    """``--timeout``: a moment on the ``monotonic`` clock (None: no deadline)."""

    def __init__(self, at: float | None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.at = at
        self._monotonic = monotonic

    def passed(self) -> bool:
        return self.at is not None and self._monotonic() >= self.at
