"""How a session of a run ended (:class:`Outcome`), what its engine did (:class:`EngineResult`)
and what the session returns to its caller (:class:`RunResult`, with its exit code)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bulkinvoke.exit_codes import ExitCode
from bulkinvoke.states import UNSUCCESSFUL_STATES, State


class Outcome(Enum):
    COMPLETE = "complete"  # every item reached a final state
    ACCEPTED = "accepted"  # --no-wait: every item was sent; results still to come
    INCOMPLETE = "incomplete"  # --timeout ran out first
    STOPPED = "stopped"  # a systemic error or the failure threshold


@dataclass(frozen=True)
class EngineResult:
    outcome: Outcome
    counts: dict[State, int]
    stop_reason: str | None = None
    submitted: int = 0
    s3_requests: int = 0
    # Results found that were written before their calls: an earlier run's, at the same
    # deterministic locations.
    earlier_results: int = 0
    # In-doubt attempts (``--in-doubt wait``) whose result came, and those sent again.
    in_doubt_found: int = 0
    in_doubt_resent: int = 0


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
    earlier_results: int = 0
    # In-doubt attempts (a crash lost their answers) whose result was found, and those sent
    # again.
    in_doubt_found: int = 0
    in_doubt_resent: int = 0
    # Made with --local: its endpoint ended with the command, so resume and retry cannot reach it.
    local: bool = False

    @property
    def exit_code(self) -> ExitCode:
        if self.outcome is Outcome.STOPPED:
            return ExitCode.STOPPED
        if self.outcome is Outcome.INCOMPLETE:
            return ExitCode.INCOMPLETE
        if any(self.counts.get(state) for state in UNSUCCESSFUL_STATES):
            return ExitCode.SOME_FAILED
        return ExitCode.OK
