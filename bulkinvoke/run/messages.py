"""What the engine thread hears from the threads around it: call results (``CallResult``), the
findings of a sweep of S3, notifications, calls left unsent, and requests to stop; and the sweep
itself, run on the collect thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bulkinvoke.calls.invoker import Call, CallResult
from bulkinvoke.calls.retry import ErrorKind, classify
from bulkinvoke.results.collector import Collector, Finding, Watch
from bulkinvoke.results.notifications import Received


@dataclass(frozen=True, slots=True)
class Sweep:
    findings: list[Finding]
    requests: int
    # Why no sweep can succeed until someone acts (expired credentials, access denied), if so.
    stop: str | None = None


@dataclass(frozen=True, slots=True)
class NotSent:
    """A call still waiting in the pool's queue when the run began to stop: it stays unsent,
    and its intent is taken back (``IntentWriter.withdraw``)."""

    call: Call


@dataclass(frozen=True, slots=True)
class StopRequest:
    """Another thread's reason to stop the run (the S3 mirror's lease was taken over)."""

    reason: str


# What the engine thread hears from calls, sweeps, notifications and other threads.
Message = CallResult | Sweep | Received | NotSent | StopRequest


def sweep_problem(error: Exception) -> tuple[str, bool]:
    """One line about a failed sweep, and whether no sweep can succeed until someone acts.
    botocore's errors go through ``classify``: their raw text may quote the refused request."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not isinstance(error, ClientError | BotoCoreError):
        return f"{type(error).__name__}: {error}", False
    problem = classify(error)
    return problem.describe(), problem.kind is ErrorKind.SYSTEMIC


def sweep(
    collector: Collector,
    watches: list[Watch],
    hand_back: Callable[[Sweep], None],
    warn: Callable[[str], None],
) -> None:
    """Look for the results of ``watches`` once; hand back what was found. A failure the run
    cannot go on with becomes the sweep's ``stop``; another is a warning."""
    before = collector.requests.total
    findings: list[Finding] = []
    stop = None
    try:
        findings = collector.sweep(watches)
    except Exception as error:
        problem, systemic = sweep_problem(error)
        if systemic:
            stop = f"collecting results: {problem}"
        else:
            warn(f"collecting results: {problem}")
    finally:
        # The engine waits for this result before it sweeps again: it must always arrive.
        hand_back(Sweep(findings, collector.requests.total - before, stop))
