"""Reading the endpoint's SNS notifications: what counts as one, and a queue that fails."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bulkinvoke.results.notifications import NotificationListener, Received, parse_notification
from bulkinvoke.states import State

FAILED = {
    "inferenceId": "bi-1",
    "invocationStatus": "Failed",
    "failureReason": "ClientError: boom",
    "eventTime": "2026-11-27T12:00:00.5Z",
    "responseParameters": {"failureLocation": "s3://b/fail/bi-1.error"},
}


def test_an_sns_envelope_and_raw_delivery_read_alike() -> None:
    raw = parse_notification(json.dumps(FAILED))
    envelope = {"Type": "Notification", "Message": json.dumps(FAILED)}
    wrapped = parse_notification(json.dumps(envelope))
    assert raw == wrapped
    assert raw is not None and raw.state is State.FAILED
    assert (raw.error, raw.failure_location) == ("ClientError: boom", "s3://b/fail/bi-1.error")


@pytest.mark.parametrize(
    "change",
    [
        {"failureReason": {"a": 1}},
        {"failureReason": 7},
        {"responseParameters": ["s3://b/x"]},
        {"responseParameters": {"failureLocation": {"Bucket": "b"}}},
        {"responseParameters": {"outputLocation": 12}},
        {"invocationStatus": "Pending"},
        {"inferenceId": 5},
    ],
)
def test_a_message_with_fields_of_the_wrong_kind_is_not_a_result(change: dict[str, Any]) -> None:
    # Such a value would otherwise reach the ledger's text columns and fail every write after it.
    assert parse_notification(json.dumps({**FAILED, **change})) is None


class _BrokenQueue:
    def __init__(self) -> None:
        self.calls = 0

    def receive(self, wait_seconds: int = 1) -> Received:
        self.calls += 1
        raise ClientError({"Error": {"Code": "AWS.SimpleQueueService.NonExistentQueue"}}, "Receive")

    def delete(self, receipt_handles: list[str]) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied"}}, "DeleteMessageBatch")


def test_a_queue_that_fails_is_warned_about_and_never_fails_the_run() -> None:
    warnings: list[str] = []
    queue = _BrokenQueue()
    listener = NotificationListener(queue, lambda received: None, warnings.append)  # type: ignore[arg-type]
    listener.start()
    listener.recorded(["receipt-1"])
    listener.stop({"bi-1"})
    assert queue.calls >= 1
    assert any("NonExistentQueue" in warning for warning in warnings), warnings
    assert any("deleting recorded notifications" in warning for warning in warnings), warnings
