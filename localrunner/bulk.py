"""Jobs written straight into the table (BatchWriteItem, 25 a call, unprocessed items sent
again): the items store.create writes, fast enough to fill a listing with 10,000 jobs for
a test or a benchmark."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chalicelib.jobs import Job
from chalicelib.store import job_to_item


def write_jobs(db: Any, table: str, jobs: Iterable[Job]) -> None:
    batch: list[dict[str, Any]] = []
    for job in jobs:
        batch.append({"PutRequest": {"Item": job_to_item(job)}})
        if len(batch) == 25:
            _write(db, table, batch)
            batch = []
    if batch:
        _write(db, table, batch)


def _write(db: Any, table: str, batch: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {table: batch}
    while pending:
        pending = db.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
