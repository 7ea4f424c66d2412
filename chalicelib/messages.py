"""What travels on the queues, and the two ways a message handler says "not done"."""

from __future__ import annotations

import json
from dataclasses import dataclass

# The longest a message may be hidden (SQS allows 12 h from its receipt), less a margin.
MAX_VISIBILITY = 43_200 - 300


class Malformed(Exception):
    """A message that can never be processed (it goes to the DLQ as it is)."""


@dataclass
class Retry(Exception):
    """Not now: hide the message for `delay` seconds and report it as a batch failure."""

    delay: int
    reason: str = ""


@dataclass(frozen=True)
class JobMessage:
    tenant: str
    job_id: str
    service: str | None = None  # lets the worker take its lease without reading first

    def dumps(self) -> str:
        data = {"tenant": self.tenant, "jobId": self.job_id}
        if self.service:
            data["service"] = self.service
        return json.dumps(data, separators=(",", ":"))


def parse_job_message(body: str) -> JobMessage:
    try:
        data = json.loads(body)
        tenant, job_id, service = data["tenant"], data["jobId"], data.get("service")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise Malformed(f"not a job message: {exc!r}") from exc
    if not (isinstance(tenant, str) and isinstance(job_id, str) and tenant and job_id):
        raise Malformed("tenant and jobId must be non-empty strings")
    if service is not None and not isinstance(service, str):
        raise Malformed("service must be a string")
    return JobMessage(tenant, job_id, service or None)
