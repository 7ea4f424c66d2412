"""IBM BAW's callbacks: the `outputs` callback body posts the job's result itself (its own
content type, the same signature headers) instead of our `job.finished` event.

The result is not copied into the event: the event is stored on the job item and sent in
an SQS message, both too small for a 256 KB result with the job's input beside it. The
stored event is a small reference instead, resolved when each attempt is sent; if the
result is gone by then (expired or deleted), the ordinary event is sent."""

from __future__ import annotations

import json
from typing import Any

from ..jobs import SUCCEEDED, Job

OUTPUTS_LIMIT = 256 * 1024
MARK = '{"$outputs":'
JSON = "application/json"


def outputs_reference(job: Job, standard: str) -> str | None:
    """The stored event for an `outputs` tenant, or None when the job has no result small
    enough to post (failed or canceled jobs, large results: the ordinary event)."""
    if job.status != SUCCEEDED or not job.result_key or (job.result_size or 0) > OUTPUTS_LIMIT:
        return None
    ref = {"key": job.result_key, "type": job.result_type or JSON}
    return MARK + json.dumps(ref, separators=(",", ":")) + ',"event":' + json.dumps(standard) + "}"


def payload(event: str, blobs: Any) -> tuple[str, str]:
    """(content type, body) to POST for a stored event: the event itself (JSON), or for an
    outputs reference, the result's bytes as text."""
    if not event.startswith(MARK):
        return JSON, event
    try:
        data = json.loads(event)
        ref, standard = data["$outputs"], data["event"]
    except (ValueError, KeyError, TypeError):
        return JSON, event
    body = blobs.get(ref["key"])
    if body is None or len(body) > OUTPUTS_LIMIT:
        return JSON, standard
    try:
        return ref["type"], body.decode("utf-8")
    except UnicodeDecodeError:
        return JSON, standard  # a webhook body is signed as text
