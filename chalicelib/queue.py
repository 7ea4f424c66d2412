"""SQS: job and callback messages; the count of jobs waiting (chalicelib/capacity.py) and a
cached view of how many messages the jobs queue holds, which repairs that count."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from .messages import MAX_VISIBILITY, JobMessage
from .ports import QueueUnavailable, translating

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeFilterType

    from .capacity import QueueCapacity

__all__ = ["MAX_VISIBILITY", "Dispatcher"]


@translating(QueueUnavailable)  # botocore's errors stay in this module
class Dispatcher:
    def __init__(self, client: SQSClient, jobs_url: str, callbacks_url: str, depth_ttl: float = 10.0,
                 capacity: QueueCapacity | None = None):
        self._sqs = client
        self.jobs_url = jobs_url
        self.callbacks_url = callbacks_url
        self.capacity = capacity  # None: no back-pressure on the queue
        self._depth_ttl = depth_ttl
        self._depth: tuple[float, int] | None = None
        self._lock = threading.Lock()
        self._reading = threading.Lock()

    def send_job(self, tenant: str, job_id: str, service: str | None = None,
                 delay: int = 0) -> None:
        """`delay`: seconds before the message is visible (a worker job's watchdog)."""
        extra: dict[str, Any] = {"DelaySeconds": delay} if delay else {}
        self._sqs.send_message(QueueUrl=self.jobs_url,
                               MessageBody=JobMessage(tenant, job_id, service).dumps(), **extra)

    def send_callback(self, tenant: str, job_id: str, event_id: str, url: str, event: str,
                      base: int = 0) -> None:
        """The message carries the rendered event, so delivering needs no read of the job."""
        message: dict[str, str | int] = {"tenant": tenant, "jobId": job_id, "eventId": event_id, "url": url,
                   "event": event}
        if base:
            message["base"] = base
        self.send_raw(self.callbacks_url, json.dumps(message, separators=(",", ":")))

    def send_raw(self, queue_url: str, body: str) -> None:
        self._sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    def url_of(self, name: str) -> str:
        """The URL of a queue known by name only (an event source's ARN names it)."""
        return self._sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def delete_batch(self, queue_url: str, receipt_handles: list[str]) -> None:
        """Delete handled messages, ten per request (SQS's batch limit)."""
        for i in range(0, len(receipt_handles), 10):
            self._sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": handle}
                for n, handle in enumerate(receipt_handles[i:i + 10])])

    def retry_later(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        """Hide a message for `seconds`; it comes back as a new delivery. SQS counts its 12 h
        limit from the receive, so the cap leaves room for the time already spent."""
        self._sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=receipt_handle,
            VisibilityTimeout=max(0, min(MAX_VISIBILITY, seconds)),
        )

    def messages_held(self, now: float | None = None) -> int:
        """Approximate messages in the jobs queue, in flight included (an upper bound of the
        jobs waiting), refreshed at most every `depth_ttl` seconds: read only when a submit
        is refused, to find places of the waiting count that were never given back. One
        request reads it; concurrent ones use the stale figure (or wait for the first)."""
        def clock() -> float:
            return time.monotonic() if now is None else now

        with self._lock:
            if self._depth and clock() - self._depth[0] < self._depth_ttl:
                return self._depth[1]
            stale = self._depth
        if stale is not None and not self._reading.acquire(blocking=False):
            return stale[1]
        if stale is None:
            self._reading.acquire()
        try:
            with self._lock:
                if self._depth and clock() - self._depth[0] < self._depth_ttl:
                    return self._depth[1]
            names: list[QueueAttributeFilterType] = [
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed",
                "ApproximateNumberOfMessagesNotVisible"]
            attrs = self._sqs.get_queue_attributes(QueueUrl=self.jobs_url,
                                                   AttributeNames=names)["Attributes"]
            depth = sum(int(value) for name, value in attrs.items() if name in names)
            with self._lock:
                self._depth = (clock(), depth)
            return depth
        finally:
            self._reading.release()
