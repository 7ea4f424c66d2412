"""SQS batches, one record at a time: a bad record never fails or repeats the others.

Chalice cannot switch on ReportBatchItemFailures for the event source (docs/pitfalls.md), and a
returned `batchItemFailures` is ignored without it — every message would be deleted. So the
handler deletes the records that succeeded itself and then raises, which makes Lambda return
only the failed ones to the queue. It is correct with or without ReportBatchItemFailures."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import telemetry

if TYPE_CHECKING:
    from .ports import QueuePort

log = logging.getLogger("jobgate.batch")


@dataclass
class Record:
    message_id: str
    body: str
    receipt_handle: str
    receive_count: int
    queue_name: str


class BatchFailed(Exception):
    """Some records must come back later; the rest were deleted already."""

    def __init__(self, failures: list[str]):
        super().__init__(f"{len(failures)} record(s) will be retried")
        self.failures = failures


def records(event: dict[str, Any]) -> list[Record]:
    out = []
    for r in event.get("Records", []):
        out.append(Record(
            message_id=r.get("messageId", ""), body=r.get("body", ""),
            receipt_handle=r.get("receiptHandle", ""),
            receive_count=int(r.get("attributes", {}).get("ApproximateReceiveCount", 1)),
            queue_name=r.get("eventSourceARN", "").rsplit(":", 1)[-1],
        ))
    return out


def process(
    event: dict[str, Any], handle: Callable[[Record], None], queue: QueuePort,
    queue_url: Callable[[str], str],
) -> dict[str, Any]:
    batch = records(event)
    failed: list[Record] = []
    done: list[Record] = []
    for record in batch:
        try:
            with telemetry.bound(messageId=record.message_id):
                handle(record)
            done.append(record)
        except Exception as exc:  # noqa: BLE001  (isolate every record)
            if getattr(exc, "expected", False):
                log.info("record deferred: %s", exc, extra={"messageId": record.message_id})
            else:
                log.exception("record failed", extra={"messageId": record.message_id})
            failed.append(record)
    result = {"batchItemFailures": [{"itemIdentifier": r.message_id} for r in failed]}
    if not failed:
        return result
    by_queue: dict[str, list[Record]] = {}
    for r in done:
        by_queue.setdefault(r.queue_name, []).append(r)
    for name, rs in by_queue.items():
        queue.delete_batch(queue_url(name), [r.receipt_handle for r in rs])
    raise BatchFailed([r.message_id for r in failed])
