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
class EndpointLoad:
    """The endpoint's own view of its queue: its CloudWatch metrics (namespace AWS/SageMaker),
    as last read. A figure is None until the endpoint has published it."""

    backlog: float | None = None  # ApproximateBacklogSize
    backlog_per_instance: float | None = None  # ApproximateBacklogSizePerInstance
    without_capacity: bool | None = None  # HasBacklogWithoutCapacity
    # ModelLatency (the endpoint's average time per request in the model), in seconds.
    model_latency_s: float | None = None
    # Described with no instance, and no figure since has shown one taking requests.
    at_zero: bool = False
    # Results came back in this session: an instance is at work, whatever a figure (a minute's
    # maximum, a minute or two old) still says.
    results_came: bool = False

    @property
    def scaling_up(self) -> bool:
        """Requests wait (or are about to) and no instance takes them: the endpoint is scaling
        up from zero, which looks like a stuck run unless said."""
        if self.results_came:
            return False
        return bool(self.without_capacity) or (self.at_zero and not self.shows_capacity)

    @property
    def shows_capacity(self) -> bool:
        """A backlog, and an instance working it off."""
        return self.without_capacity is False and bool(self.backlog)


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
    endpoint: EndpointLoad | None = None

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
