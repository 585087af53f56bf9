"""The life of one attempt at one manifest row, as an explicit state machine.

An attempt starts ``pending``; ``submitting`` is written (durably) before the call, so a crash
between the write and the call leaves an attempt that is *in doubt*: resume checks its
deterministic output location before it sends it again.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    def can_become(self, other: State) -> bool:
        return other in _TRANSITIONS[self]


FINAL_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.EXPIRED, State.REJECTED})
# The final states but success: what --max-failures counts, exit code 1 reports and retry resends.
UNSUCCESSFUL_STATES = (State.FAILED, State.EXPIRED, State.REJECTED)

# A call whose intent was written may be found finished before its response was recorded (resume
# looks for its output), and an expired attempt may get its result after all (the endpoint was
# only slow: collect and retry look once more): both are allowed, so that the ledger
# follows what S3 says. bench/crash_fuzz.py checks every recorded history against this table.
_TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.SUBMITTING, State.REJECTED}),
    # Back to pending: the intent was written, but the run stopped before the call's turn came
    # (the engine knows it never left), so it is not in doubt.
    State.SUBMITTING: frozenset(
        {
            State.PENDING,
            State.SUBMITTING,
            State.SUBMITTED,
            State.SUCCEEDED,
            State.FAILED,
            State.REJECTED,
        }
    ),
    State.SUBMITTED: frozenset({State.SUCCEEDED, State.FAILED, State.EXPIRED}),
    State.EXPIRED: frozenset({State.SUCCEEDED, State.FAILED}),
    State.SUCCEEDED: frozenset(),
    State.FAILED: frozenset(),
    State.REJECTED: frozenset(),
}


class InvalidTransition(ValueError):
    def __init__(self, old: State, new: State) -> None:
        super().__init__(f"an attempt cannot go from {old.value} to {new.value}")
        self.old = old
        self.new = new


def check_transition(old: State, new: State) -> None:
    if not old.can_become(new):
        raise InvalidTransition(old, new)
