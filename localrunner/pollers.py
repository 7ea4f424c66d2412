"""Feed SQS messages to the app's SQS handlers the way Lambda's event source mapping does:
batches, the queue's visibility timeout, partial batch responses, redrive to the DLQ."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("jobgate.local.poller")
CHALICE_CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"
LOCAL_STAGE = "dev"  # the stage whose settings the local runner applies


@functools.cache
def function_timeout(name: str, stage: str = LOCAL_STAGE) -> float:
    """A function's `lambda_timeout` as Chalice resolves it: the function's own entry, then
    the stage's, then the top level's (Lambda's default, 60 s, when none sets it)."""
    cfg = json.loads(CHALICE_CONFIG.read_text())
    stage_cfg = cfg.get("stages", {}).get(stage, {})
    own = stage_cfg.get("lambda_functions", {}).get(name, {})
    for level in (own, stage_cfg, cfg):
        if "lambda_timeout" in level:
            return float(level["lambda_timeout"])
    return 60.0


class LambdaContext:
    """Enough of Lambda's context object for our handlers, with the function's deployed
    timeout, so that what runs out of time on AWS runs out of time here."""

    def __init__(self, name: str, timeout: float | None = None):
        self.function_name = name
        self.aws_request_id = "local"
        self.timeout = function_timeout(name) if timeout is None else timeout
        self._deadline = time.monotonic() + self.timeout

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self._deadline - time.monotonic()) * 1000)

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._deadline


def to_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {},
        "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn, "awsRegion": region,
    } for m in messages]}


def run_batch(sqs: Any, queue_url: str, queue_arn: str, region: str,
              messages: list[dict[str, Any]], handler: Callable[[dict[str, Any], Any], Any],
              context: Any, catch: tuple[type[BaseException], ...] = (Exception,)) -> Any:
    """Lambda's event source mapping for one received batch: the SQS event, one invocation,
    then DeleteMessageBatch for every record the answer did not report failed. An exception
    (one of `catch`) or an invocation that outlived its timeout (`context.expired`) deletes
    nothing: the whole batch comes back. Returns the handler's answer, or its exception."""
    try:
        result = handler(to_event(messages, queue_arn, region), context)
    except catch as exc:
        return exc
    if getattr(context, "expired", False):
        return result  # Lambda would have killed the invocation: nothing is deleted
    failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
    done = [m for m in messages if m["MessageId"] not in failed]
    for i in range(0, len(done), 10):
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
            for n, m in enumerate(done[i:i + 10])])
    return result


class Poller(threading.Thread):
    def __init__(self, sqs: Any, queue_url: str, handler: Any, name: str, batch_size: int,
                 region: str, stop: threading.Event, wait_seconds: int = 1,
                 function: str | None = None):
        super().__init__(name=f"poller-{name}", daemon=True)
        self.sqs, self.queue_url, self.handler = sqs, queue_url, handler
        self.fn_name, self.batch_size, self.region = name, batch_size, region
        # The function whose settings apply: `name` less the poller's number ("run_jobs-2").
        base, _, number = name.rpartition("-")
        self.function = function or (base if base and number.isdigit() else name)
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
        context = LambdaContext(self.function)
        out = run_batch(self.sqs, self.queue_url, self.arn, self.region, messages,
                        self.handler, context)
        if isinstance(out, Exception):  # Lambda: the batch returns to the queue
            log.info("handler %s raised %s: batch left to the queue", self.fn_name,
                     type(out).__name__)
        elif context.expired:  # the whole batch comes back after the visibility timeout
            log.error("function %s timed out after %.0f s: batch left to the queue",
                      self.fn_name, context.timeout)
        return len(messages)
