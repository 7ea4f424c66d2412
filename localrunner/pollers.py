"""Feed SQS messages to the app's SQS handlers the way Lambda's event source mapping does:
batches, the queue's visibility timeout, partial batch responses, redrive to the DLQ."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("jobgate.local.poller")


class LambdaContext:
    """Enough of Lambda's context object for our handlers."""

    def __init__(self, name: str, timeout: float = 900.0):
        self.function_name = name
        self.aws_request_id = "local"
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self._deadline - time.monotonic()) * 1000)


def to_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {},
        "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn, "awsRegion": region,
    } for m in messages]}


class Poller(threading.Thread):
    def __init__(self, sqs: Any, queue_url: str, handler: Any, name: str, batch_size: int,
                 region: str, stop: threading.Event, wait_seconds: int = 1):
        super().__init__(name=f"poller-{name}", daemon=True)
        self.sqs, self.queue_url, self.handler = sqs, queue_url, handler
        self.fn_name, self.batch_size, self.region = name, batch_size, region
        self.stop, self.wait_seconds = stop, wait_seconds
        self.arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001  (a poller must outlive any one failure)
                log.exception("poller %s failed; continuing", self.fn_name)
                self.stop.wait(1.0)

    def poll_once(self) -> int:
        out = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=min(10, self.batch_size),
            WaitTimeSeconds=self.wait_seconds, AttributeNames=["All"],
        )
        messages = out.get("Messages", [])
        if not messages:
            return 0
        event = to_event(messages, self.arn, self.region)
        try:
            result = self.handler(event, LambdaContext(self.fn_name))
        except Exception as exc:  # noqa: BLE001  (Lambda: the batch returns to the queue)
            log.info("handler %s raised %s: batch left to the queue", self.fn_name,
                     type(exc).__name__)
            return len(messages)
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                for n, m in enumerate(done[i:i + 10])])
        return len(messages)
