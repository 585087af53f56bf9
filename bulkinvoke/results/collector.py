"""Find the outputs and failures that the endpoint writes to S3, cheaply.

There is no status API for asynchronous inference: an attempt is finished when its output (or
failure) object exists. Asking S3 once per attempt per poll would cost millions of requests on a
large run, so a sweep picks the cheaper of two strategies from the numbers:

* LIST: page through each output/failure "directory" (ListObjectsV2, 1000 keys a page) and match
  keys against the expected locations. Cost: the directory's size / 1000, whatever is outstanding.
* HEAD: ask for each outstanding attempt's output (and failure) key. Cost: one or two requests an
  attempt; cheaper only when few attempts are outstanding.

:class:`SweepSchedule` spaces sweeps out so that a long, slow run does not list the same directory
over and over for a handful of new objects.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.errors import error_code
from bulkinvoke.s3uri import S3Location, bucket_owner_args, parse_s3_uri
from bulkinvoke.states import State

ERROR_TEXT_LIMIT = 2048
LIST_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Watch:
    """An accepted attempt whose result has not been seen yet."""

    row: int
    attempt: int
    inference_id: str
    output_location: str | None
    failure_location: str | None
    submitted_at: float
    deadline: float
    # The CustomAttributes the attempt was sent with: sensitive, and a model may echo them in
    # its failure, so they are taken out of the error before it is recorded.
    custom_attributes: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    row: int
    attempt: int
    state: State
    completed_at: float
    output_bytes: int | None = None
    error: str | None = None
    # The object is older than the call: another run's, at the same deterministic location.
    written_before_call: bool = False


# How much older than its call an object must look before it is called another run's: S3's
# clock and this machine's may disagree by this much without a false alarm.
EARLIER_RUN_MARGIN_S = 60.0


@dataclass
class RequestCounter:
    """S3 requests made, by operation: the figure the collection benchmark reports."""

    counts: dict[str, int]

    def __init__(self) -> None:
        self.counts = defaultdict(int)

    def add(self, operation: str, n: int = 1) -> None:
        self.counts[operation] += n

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class _Seen:
    size: int
    modified: float


class Collector:
    def __init__(
        self,
        s3_client: S3Client,
        *,
        clock: Callable[[], float] = time.time,
        expected_bucket_owner: str | None = None,
        strategy: Literal["auto", "list", "head"] = "auto",
    ) -> None:
        self._s3 = s3_client
        self._strategy = strategy
        self._clock = clock
        self._owner_args = bucket_owner_args(expected_bucket_owner)
        self.requests = RequestCounter()
        # Keys a directory held at its last listing: the estimate of what listing it again costs.
        self._directory_sizes: dict[tuple[str, str], int] = {}

    def sweep(self, watches: Collection[Watch]) -> list[Finding]:
        """Look once for every watched attempt's result; expire those past their deadline."""
        if not watches:
            return []
        if self._strategy == "auto":
            use_head = self._head_is_cheaper(watches)
        else:
            use_head = self._strategy == "head"
        findings = self._sweep_by_head(watches) if use_head else self._sweep_by_list(watches)
        found = {(f.row, f.attempt) for f in findings}
        now = self._clock()
        findings.extend(
            Finding(w.row, w.attempt, State.EXPIRED, now, error="no output or failure in time")
            for w in watches
            if (w.row, w.attempt) not in found and now > w.deadline
        )
        return findings

    def _head_is_cheaper(self, watches: Collection[Watch]) -> bool:
        head_cost = sum(1 + (w.failure_location is not None) for w in watches)
        list_cost = 0
        for directory in _directories(watches):
            known = self._directory_sizes.get(directory)
            list_cost += 1 + (known if known is not None else len(watches)) // LIST_PAGE_SIZE
        return head_cost <= list_cost

    def _sweep_by_list(self, watches: Collection[Watch]) -> list[Finding]:
        listings: Listings = {
            directory: self._list(*directory) for directory in _directories(watches)
        }
        findings = []
        for watch in watches:
            output = _lookup(listings, watch.output_location)
            if output is not None:
                findings.append(self._succeeded(watch, output))
                continue
            failure = _lookup(listings, watch.failure_location)
            if failure is not None and watch.failure_location is not None:
                findings.append(self._failed(watch, failure, watch.failure_location))
        return findings

    def _sweep_by_head(self, watches: Collection[Watch]) -> list[Finding]:
        findings = []
        for watch in watches:
            output = self._head(watch.output_location)
            if output is not None:
                findings.append(self._succeeded(watch, output))
                continue
            failure = self._head(watch.failure_location)
            if failure is not None and watch.failure_location is not None:
                findings.append(self._failed(watch, failure, watch.failure_location))
        return findings

    def _succeeded(self, watch: Watch, seen: _Seen) -> Finding:
        return Finding(
            watch.row,
            watch.attempt,
            State.SUCCEEDED,
            _completion_time(watch, seen, self._clock()),
            output_bytes=seen.size,
            written_before_call=_written_before(watch, seen),
        )

    def _failed(self, watch: Watch, seen: _Seen, location: str) -> Finding:
        return Finding(
            watch.row,
            watch.attempt,
            State.FAILED,
            _completion_time(watch, seen, self._clock()),
            error=self.read_error(location),
            written_before_call=_written_before(watch, seen),
        )

    def read_error(self, location: str) -> str:
        """The start of a failure object's text: the reason the endpoint gave."""
        target = parse_s3_uri(location)
        self.requests.add("GetObject")
        try:
            body = self._s3.get_object(
                Bucket=target.bucket,
                Key=target.key,
                Range=f"bytes=0-{ERROR_TEXT_LIMIT - 1}",
                **self._owner_args,
            )["Body"].read()
        except self._s3.exceptions.ClientError as error:
            return f"failure object {location} could not be read: {error}"
        text = body.decode("utf-8", errors="replace").strip()
        return text or "the endpoint wrote an empty failure object"

    def _list(self, bucket: str, prefix: str) -> dict[str, _Seen]:
        keys: dict[str, _Seen] = {}
        args = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE_SIZE, **self._owner_args}
        while True:
            self.requests.add("ListObjectsV2")
            try:
                page = self._s3.list_objects_v2(**args)
            except self._s3.exceptions.NoSuchBucket:
                break
            for item in page.get("Contents", ()):
                keys[item["Key"]] = _Seen(item["Size"], item["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                break
            args["ContinuationToken"] = page["NextContinuationToken"]
        self._directory_sizes[(bucket, prefix)] = len(keys)
        return keys

    def _head(self, location: str | None) -> _Seen | None:
        if location is None:
            return None
        target = parse_s3_uri(location)
        self.requests.add("HeadObject")
        try:
            head = self._s3.head_object(Bucket=target.bucket, Key=target.key, **self._owner_args)
        except self._s3.exceptions.ClientError as error:
            if error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return _Seen(head["ContentLength"], head["LastModified"].timestamp())


def _directories(watches: Iterable[Watch]) -> set[tuple[str, str]]:
    directories = set()
    for watch in watches:
        for location in (watch.output_location, watch.failure_location):
            if location is not None:
                target = parse_s3_uri(location)
                directories.add((target.bucket, target.directory))
    return directories


Listings = dict[tuple[str, str], dict[str, _Seen]]


def _lookup(listings: Listings, location: str | None) -> _Seen | None:
    if location is None:
        return None
    target: S3Location = parse_s3_uri(location)
    return listings.get((target.bucket, target.directory), {}).get(target.key)


def _written_before(watch: Watch, seen: _Seen) -> bool:
    return seen.modified + 1.0 < watch.submitted_at - EARLIER_RUN_MARGIN_S


def _completion_time(watch: Watch, seen: _Seen, now: float) -> float:
    # S3's LastModified is cut to whole seconds: the object was written somewhere in
    # [LastModified, LastModified + 1), after the call and before it was seen. The middle of
    # what is left of that second is the best estimate, and never gives a negative latency.
    earliest = max(seen.modified, watch.submitted_at)
    latest = max(min(now, seen.modified + 1.0), earliest)
    return (earliest + latest) / 2


class SweepSchedule:
    """When to sweep next: often while results arrive, backing off while none do.

    After a sweep that found nothing the interval grows by half, up to ``max_interval``: short
    enough that the last results of a run are seen within seconds of landing, while a quiet
    sweep (one LIST page per 1,000 outstanding, or a HEAD each for a few) stays cheap. After
    one that found results, the next sweep is set for when its cost, spread over the results it
    is expected to find, comes to about ``requests_per_result``, with ``baseline_requests_per_s``
    allowed on top so that a small run, where the cost is negligible anyway, is not kept waiting:
    a slow trickle of results into a large directory is listed rarely, a flood often.
    """

    def __init__(
        self,
        *,
        min_interval: float = 0.25,
        max_interval: float = 5.0,
        requests_per_result: float = 0.02,
        baseline_requests_per_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.requests_per_result = requests_per_result
        self.baseline_requests_per_s = baseline_requests_per_s
        self._clock = clock
        self._interval = min_interval
        self._last = clock()
        self._next = self._last

    def due(self) -> bool:
        return self._clock() >= self._next

    def seconds_until_due(self) -> float:
        return max(0.0, self._next - self._clock())

    def hurry(self) -> None:
        """Sweep again soon: the run is held back until results free room for more sends."""
        self._next = min(self._next, self._last + self.min_interval)

    def swept(self, found: int, requests: int) -> None:
        now = self._clock()
        if found:
            results_per_second = found / max(now - self._last, 1e-3)
            affordable_requests_per_s = (
                self.requests_per_result * results_per_second + self.baseline_requests_per_s
            )
            wanted = requests / affordable_requests_per_s
            self._interval = min(max(wanted, self.min_interval), self.max_interval)
        else:
            self._interval = min(self._interval * 1.5, self.max_interval)
        self._last = now
        self._next = now + self._interval
