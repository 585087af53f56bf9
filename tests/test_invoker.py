"""The invoker's last check before a paced call leaves, on an injected clock (no sleeping)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from botocore.hooks import HierarchicalEmitter

from bulkinvoke.calls.invoker import Call, Invoker
from bulkinvoke.calls.limiter import RateLimiter
from bulkinvoke.calls.retry import RetryPolicy
from bulkinvoke.request_options import RequestOptions
from bulkinvoke.states import State


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


class SendingClient:
    """Emits before-send as botocore (and the direct transport) does, and notes when."""

    def __init__(self, time: FakeTime) -> None:
        self.meta = SimpleNamespace(events=HierarchicalEmitter())
        self.sent_at: list[float] = []
        self._time = time

    def invoke_endpoint_async(self, **_: Any) -> dict[str, Any]:
        self.meta.events.emit("before-send.sagemaker-runtime.InvokeEndpointAsync", request=None)
        self.sent_at.append(self._time.now)
        return {"InferenceId": "x", "OutputLocation": "s3://b/o", "FailureLocation": "s3://b/f"}


def test_calls_held_up_on_the_way_out_still_leave_at_most_rate_per_second() -> None:
    time = FakeTime()
    client = SendingClient(time)
    limiter = RateLimiter(3, clock=time.monotonic, sleep=time.sleep)
    invoker = Invoker(
        client, "demo", limiter=limiter, policy=RetryPolicy(),
        monotonic=time.monotonic, sleep=time.sleep,
    )  # fmt: skip
    # Ten calls reach the wire together, as after a stall: the limiter's pacing is no help here.
    for row in range(10):
        call = Call(row, 1, f"bi-{row}", "s3://b/k", RequestOptions())
        assert invoker.invoke(call).state is State.SUBMITTED
    sent = client.sent_at
    assert len(sent) == 10
    assert all(sum(t <= s < t + 1.0 for s in sent) <= 3 for t in sent)
    assert sent[-1] - sent[0] < 3.5, "and no slower than the rate"
