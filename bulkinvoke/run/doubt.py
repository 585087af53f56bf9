"""An in-doubt attempt whose result is not there yet may still be in the endpoint's queue (it was
accepted, but the answer saying so was lost with the crash) or may never have reached it. With
``--in-doubt resend`` (the default) it is sent again at once, with the same inference ID; with
``--in-doubt wait`` its output and failure locations are watched like those of accepted calls,
and it is sent again only once it is *overdue* (:meth:`Doubt.overdue`): past its expiry, or
once the endpoint has returned a result for a call accepted after its intent was written and a
result of its own would have come by now: its intent plus the time it may have taken to go out,
plus twice the longest latency (acceptance to result) seen in the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only named in annotations: importing them loads botocore, which `--help` must not wait for.
    from bulkinvoke.calls.invoker import Call
    from bulkinvoke.results.collector import Watch

# How long after its intent an in-doubt call may have gone out (intents are written a chunk
# ahead, and a call may wait for the rate limiter and its retries).
SEND_MARGIN_S = 5.0
# The least latency assumed when none has been seen.
MIN_LATENCY_S = 1.0


class InDoubt(StrEnum):
    RESEND = "resend"
    WAIT = "wait"


@dataclass(frozen=True)
class Doubt:
    """An in-doubt attempt being watched (``--in-doubt wait``)."""

    call: Call
    watch: Watch
    since: float  # when its intent was written
    expires_at: float

    def overdue(self, now: float, horizon: float, longest_latency: float) -> bool:
        """Whether to send it again: past its expiry; or the endpoint has given a result for a
        call accepted after this one's intent (``horizon``, the latest acceptance with a
        result), and twice the longest latency seen has passed since it was due to go out."""
        if now >= self.expires_at:
            return True
        due_by = self.since + SEND_MARGIN_S
        return horizon > self.since and now >= due_by + 2 * max(longest_latency, MIN_LATENCY_S)
