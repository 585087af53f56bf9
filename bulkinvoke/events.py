"""What a run tells the outside world while it works.

The core never draws anything: it hands :class:`Progress` snapshots and :class:`Notice` messages
to subscribers (the CLI's rich display, plain log lines, a notebook), as s3transfer does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from bulkinvoke.states import State


@dataclass(frozen=True)
class Progress:
    total: int
    counts: dict[State, int]
    calls_in_progress: int
    awaiting_results: int
    submit_rate: float | None  # calls per second, once a second has passed
    rate_limit: float | None
    throttles: int
    retries: int
    elapsed_s: float
    eta_s: float | None = None

    def count(self, *states: State) -> int:
        return sum(self.counts.get(state, 0) for state in states)


class NoticeLevel(Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Notice:
    level: NoticeLevel
    message: str
    details: dict[str, object] = field(default_factory=dict)


class RunSubscriber(Protocol):
    def on_progress(self, progress: Progress) -> None: ...

    def on_notice(self, notice: Notice) -> None: ...


class Subscribers:
    """Fans events out to every subscriber, in the order they were given."""

    def __init__(self, subscribers: list[RunSubscriber] | None = None) -> None:
        self._subscribers = list(subscribers or [])

    def progress(self, progress: Progress) -> None:
        for subscriber in self._subscribers:
            subscriber.on_progress(progress)

    def notice(self, level: NoticeLevel, message: str, **details: object) -> None:
        notice = Notice(level, message, details)
        for subscriber in self._subscribers:
            subscriber.on_notice(notice)
