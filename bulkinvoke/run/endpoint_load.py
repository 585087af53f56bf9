"""The endpoint's load, watched while a session goes on: its CloudWatch backlog read on a thread
of its own (10 s in, then one GetMetricData call per ``--endpoint-metrics-every``, a minute by
default: the metrics have a minute's resolution) and added to every progress snapshot; a
notice when the endpoint has a backlog and no instance (scaling up from zero) and when it has
capacity again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from bulkinvoke.calls.aws import Clients
from bulkinvoke.calls.endpoint import EndpointDescription
from bulkinvoke.calls.metrics import MetricsUnavailable, read_endpoint_load
from bulkinvoke.events import EndpointLoad, NoticeLevel, Progress, Subscribers
from bulkinvoke.run.definition import RunOptions
from bulkinvoke.states import State

# When a session's first reading is made.
FIRST_READ_AFTER_S = 10.0


def watch_load(
    clients: Clients,
    options: RunOptions,
    described: EndpointDescription | None,
    subscribers: Subscribers,
) -> LoadWatch | None:
    """A watch on the endpoint the session described, None if it was not described (the check
    is off, or it could not be made) or ``--endpoint-metrics-every 0``."""
    if described is None or not options.endpoint_metrics_seconds:
        return None
    cloudwatch = clients.cloudwatch
    return LoadWatch(
        options.endpoint,
        lambda: read_endpoint_load(cloudwatch, options.endpoint),
        options.endpoint_metrics_seconds,
        subscribers,
        described.instances,
    )


class LoadWatch:
    """Keeps the latest :class:`EndpointLoad`; ``read`` makes one GetMetricData call."""

    def __init__(
        self,
        endpoint: str,
        read: Callable[[], EndpointLoad],
        interval_s: float,
        subscribers: Subscribers,
        described_instances: int | None,
    ) -> None:
        self._endpoint = endpoint
        self._read = read
        self._interval_s = interval_s
        self._subscribers = subscribers
        # Until a figure shows an instance at work, the description may say there is none (and
        # look_at_endpoint has said so).
        self._latest = EndpointLoad(at_zero=described_instances == 0)
        self._said_scaling_up = self._latest.scaling_up
        self._said_unreadable = False
        self._finished_before: int | None = None
        # Guards _latest and _said_scaling_up: the watch's thread and the engine's both move them.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # The session's subscribers, with the endpoint's load in every progress snapshot.
        self.subscribers: Subscribers = _WithLoad(subscribers, self)

    def latest(self) -> EndpointLoad:
        return self._latest

    def read_once(self) -> None:
        try:
            load = self._read()
        except MetricsUnavailable as reason:
            if not self._said_unreadable:
                self._said_unreadable = True
                self._subscribers.notice(
                    NoticeLevel.WARNING,
                    f"endpoint {self._endpoint}'s CloudWatch metrics were not read ({reason}); "
                    "the run goes on without its backlog (--endpoint-metrics-every 0 stops "
                    "asking)",
                )
            return
        with self._lock:
            latest = self._latest
            self._latest = replace(
                load,
                at_zero=latest.at_zero and not load.shows_capacity,
                results_came=latest.results_came,
            )
        self._tell_scaling()

    def saw_results(self, finished: int) -> None:
        """``finished`` attempts of the run have a result; more than at the session's first
        snapshot means an instance made some of them."""
        if self._finished_before is None:
            self._finished_before = finished
        if finished <= self._finished_before or self._latest.results_came:
            return
        with self._lock:
            self._latest = replace(self._latest, results_came=True)
        self._tell_scaling()

    def _tell_scaling(self) -> None:
        with self._lock:
            load = self._latest
            if load.scaling_up == self._said_scaling_up:
                return
            self._said_scaling_up = load.scaling_up
        if load.scaling_up:
            queued = f"{load.backlog:.0f} requests" if load.backlog is not None else "requests"
            self._subscribers.notice(
                NoticeLevel.INFO,
                f"endpoint {self._endpoint} has {queued} queued and no instance "
                "(HasBacklogWithoutCapacity): it is scaling up, and results follow once an "
                "instance is in service",
            )
        else:
            self._subscribers.notice(
                NoticeLevel.INFO, f"endpoint {self._endpoint} has an instance taking requests"
            )

    @contextmanager
    def running(self) -> Iterator[None]:
        """Read FIRST_READ_AFTER_S in (or after one interval, if shorter), then every
        interval, until the block ends."""
        thread = threading.Thread(target=self._run, name="bulkinvoke-endpoint-load", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            # Not joined: a GetMetricData call in progress must not hold up the run's end.

    def _run(self) -> None:
        # A short run ends before it needs the endpoint's view (a scale from zero is known
        # from the description): it pays nothing for a CloudWatch client.
        wait = min(self._interval_s, FIRST_READ_AFTER_S)
        while not self._stop.wait(wait):
            self.read_once()
            wait = self._interval_s


class _WithLoad(Subscribers):
    def __init__(self, subscribers: Subscribers, watch: LoadWatch) -> None:
        super().__init__()
        self._inner = subscribers
        self._watch = watch

    def progress(self, progress: Progress) -> None:
        self._watch.saw_results(progress.count(State.SUCCEEDED, State.FAILED))
        self._inner.progress(replace(progress, endpoint=self._watch.latest()))

    def notice(self, level: NoticeLevel, message: str, **details: object) -> None:
        self._inner.notice(level, message, **details)
