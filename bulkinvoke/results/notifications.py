"""Results pushed by the endpoint: its SNS success and error topics, read from an SQS queue.

SageMaker publishes one JSON message per finished request (``inferenceId``,
``invocationStatus`` ``Completed`` or ``Failed``, ``responseParameters.outputLocation`` or
``failureLocation``, ``failureReason``, ``eventTime``). A queue subscribed to both topics lets
a run learn of results without asking S3 at all; polling S3 stays as the fallback for anything
the queue missed. Messages are deleted only after the ledger holds what they said.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bulkinvoke.aws_protocols import SqsClient
from bulkinvoke.states import State

RECEIVE_BATCH = 10
_DRAIN_ROUNDS = 100


@dataclass(frozen=True, slots=True)
class ResultNotice:
    inference_id: str
    state: State
    completed_at: float | None
    output_location: str | None = None
    failure_location: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Received:
    notices: list[ResultNotice]
    # Messages that are not results (a subscription confirmation, say) are left alone.
    receipts: dict[str, list[str]]


def parse_notification(body: str) -> ResultNotice | None:
    """The result a message reports, or None if it is not an async inference notification.

    Both SNS envelopes and raw message delivery are understood.
    """
    try:
        message = json.loads(body)
        if isinstance(message, dict) and message.get("Type") == "Notification":
            message = json.loads(message["Message"])
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("inferenceId"), str):
        return None
    status = message.get("invocationStatus")
    if status not in ("Completed", "Failed"):
        return None
    response = message.get("responseParameters") or {}
    if not isinstance(response, dict):
        return None
    output_location = response.get("outputLocation")
    failure_location = response.get("failureLocation")
    error = message.get("failureReason") if status == "Failed" else None
    # What goes into the ledger must be text; anything else is not SageMaker's message.
    texts = (output_location, failure_location, error)
    if any(text is not None and not isinstance(text, str) for text in texts):
        return None
    return ResultNotice(
        inference_id=message["inferenceId"],
        state=State.SUCCEEDED if status == "Completed" else State.FAILED,
        completed_at=_timestamp(message.get("eventTime")),
        output_location=output_location,
        failure_location=failure_location,
        error=error,
    )


def _timestamp(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class NotificationQueue:
    def __init__(self, sqs_client: SqsClient, queue_url: str) -> None:
        self._sqs = sqs_client
        self._url = queue_url
        self.requests = 0

    def receive(self, wait_seconds: int = 1) -> Received:
        self.requests += 1
        response = self._sqs.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=RECEIVE_BATCH,
            WaitTimeSeconds=wait_seconds,
        )
        notices = []
        receipts: dict[str, list[str]] = {}
        for message in response.get("Messages", ()):
            notice = parse_notification(message.get("Body", ""))
            if notice is not None:
                notices.append(notice)
                receipts.setdefault(notice.inference_id, []).append(message["ReceiptHandle"])
        return Received(notices, receipts)

    def delete(self, receipt_handles: list[str]) -> None:
        receipt_handles = list(dict.fromkeys(receipt_handles))
        for start in range(0, len(receipt_handles), RECEIVE_BATCH):
            batch = receipt_handles[start : start + RECEIVE_BATCH]
            self.requests += 1
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(batch)],
            )


class NotificationListener:
    """Reads the queue on a thread of its own and hands what it receives to ``deliver``.

    The run records those results and makes them durable; only then does it pass their receipts
    to :meth:`recorded`, and only then are the messages deleted from the queue.
    """

    def __init__(
        self,
        notifications: NotificationQueue,
        deliver: Callable[[Received], None],
        warn: Callable[[str], None],
    ) -> None:
        self._notifications = notifications
        self._deliver = deliver
        self._warn = warn
        self._deletable: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="notifications", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, recorded_ids: set[str]) -> None:
        """Stop reading; delete waiting messages about results the ledger already holds.

        A run can learn every result from S3 before the queue delivers the notifications;
        left there, they would greet the next run that reads the queue.
        """
        self._stopped.set()
        self._thread.join()
        try:
            self._delete_recorded()
            self._delete_waiting(recorded_ids)
        except Exception as error:  # the ledger holds the results: only tidying the queue failed
            self._warn(f"deleting recorded notifications from the queue: {error}")

    def _delete_waiting(self, recorded_ids: set[str]) -> None:
        for _ in range(_DRAIN_ROUNDS):
            received = self._notifications.receive(wait_seconds=0)
            known = [
                handle
                for inference_id, handles in received.receipts.items()
                if inference_id in recorded_ids
                for handle in handles
            ]
            if not known:
                return
            self._notifications.delete(known)

    def recorded(self, receipts: list[str]) -> None:
        self._deletable.put(receipts)

    def _listen(self) -> None:
        while not self._stopped.is_set():
            try:
                self._delete_recorded()
                received = self._notifications.receive(wait_seconds=1)
            except Exception as error:  # polling S3 covers for a queue that fails
                self._warn(f"reading notifications: {error}")
                self._stopped.wait(5)
                continue
            if received.notices:
                self._deliver(received)

    def _delete_recorded(self) -> None:
        while True:
            try:
                receipts = self._deletable.get_nowait()
            except queue.Empty:
                return
            self._notifications.delete(receipts)


class EarlyNotices:
    """Notices for inference IDs no one awaits yet: another run's, or a result that came before
    its call's answer did. Kept (up to ``capacity``) until that answer arrives; what is not kept,
    the queue delivers again, since its receipts are never acknowledged."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._kept: dict[str, tuple[ResultNotice, list[str]]] = {}

    def keep(self, notice: ResultNotice, receipts: list[str]) -> None:
        if len(self._kept) < self._capacity:
            self._kept[notice.inference_id] = (notice, receipts)

    def pop(self, inference_id: str) -> tuple[ResultNotice, list[str]] | None:
        return self._kept.pop(inference_id, None)
