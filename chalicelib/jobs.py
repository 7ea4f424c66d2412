"""The job record and the pure rules about it (no AWS here): states, retry delays,
expiry, and how a record becomes the public resource."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .statuses import CANCELED, FAILED, QUEUED, RUNNING, STATUSES, SUCCEEDED, TERMINAL

__all__ = ["CANCELED", "FAILED", "QUEUED", "RUNNING", "STATUSES", "SUCCEEDED", "TERMINAL",
           "Job"]


@dataclass
class Job:
    tenant: str
    job_id: str
    service: str
    status: str
    created_at: float
    expires_at: float
    run_id: str | None = None
    input: Any = None
    variables: dict[str, str] = field(default_factory=dict)
    content_inline: bytes | None = None
    content_key: str | None = None
    content_type: str | None = None
    log_level: int = 1
    max_attempts: int = 3
    attempts: int = 0
    started_at: float | None = None
    completed_at: float | None = None
    progress_percent: float | None = None
    progress_message: str | None = None
    status_vars: dict[str, str] = field(default_factory=dict)
    result_key: str | None = None
    result_type: str | None = None
    result_size: int | None = None
    valid_until: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    log_inline: str | None = None
    log_key: str | None = None
    log_size: int = 0
    lease_token: str | None = None
    lease_until: float | None = None
    callback_url: str | None = None
    callback_state: str = "none"
    callback_attempts: int = 0
    callback_last_at: float | None = None
    callback_last_error: str | None = None
    chain: list[dict[str, Any]] = field(default_factory=list)
    previous: str | None = None
    next: str | None = None
    request_hash: str | None = None
    base_url: str | None = None
    callback_event: str | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    chain_started: bool = False
    # Worker services only (chalicelib/leases.py): the sparse claim index's keys, set while
    # the job can be claimed, removed by every terminal write.
    claim_key: str | None = None
    available_at: float | None = None
    claimed_at: float | None = None
    run_deadline: float | None = None
    log_lines: list[str] = field(default_factory=list)
    # The shard of the tenant-quota slot this job holds until it ends (chalicelib/capacity.py
    # TenantSlots); None: it holds none (a chain's next job, a job from before the counter).
    slot: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def expired(self, now: float) -> bool:
        return self.expires_at <= now

    def result_valid(self, now: float) -> bool:
        # A presigned URL lives at least 1 s, so the last second has none to hand out.
        return bool(self.result_key) and self.valid_until is not None and now <= self.valid_until - 1


def holds_place(job: Job, claimed: bool = False) -> bool:
    """Whether a job holds a reserved place among the jobs waiting (chalicelib/capacity.py):
    a client submitted it (a chain's next job is not counted) and no worker has started it
    yet. `claimed`: `job` is as the claim that just took it returned it (its attempt
    already counted)."""
    return job.previous is None and job.attempts - (1 if claimed else 0) == 0


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def retry_delay(attempt: int, base: int, cap: int = 43_200) -> int:
    """Delay before retrying after the n-th failed attempt: base × 2^(n-1), capped."""
    return max(1, min(cap, int(base * 2 ** max(0, attempt - 1))))


def presign_seconds(valid_until: float, now: float, maximum: int) -> int:
    """A presigned URL never outlives the result's validity (and at most `maximum`)."""
    return max(1, min(maximum, math.floor(valid_until - now)))


def retry_after(job: Job) -> int:
    """A polling hint: soon for fresh jobs, calmer for long-running ones."""
    if job.status == QUEUED:
        return 1
    return 2 if job.progress_percent is None else 1


def retry_time(job: Job) -> float | None:
    """When a job back in the queue after a failed attempt is tried again (None otherwise).
    A failed attempt records its error and `availableAt` as it gives the job back
    (JobStore.release for Lambda services, LeaseStore.release for worker services)."""
    if job.status == QUEUED and job.error_code:
        return job.available_at
    return None


class Resource:
    """A job as clients see it (the shape of models.JobResource, which the OpenAPI document
    is generated from): built as the JSON it is sent as, with no pydantic model to build
    or validate on the polling path. tests/test_openapi.py checks that it is exactly what
    JobResource would dump."""

    __slots__ = ("body",)

    def __init__(self, body: dict[str, Any]):
        self.body = body

    def dump(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, dict) else v for k, v in self.body.items()}

    @property
    def duration(self) -> float | None:
        return self.body.get("duration")

    @property
    def result_url(self) -> str | None:
        return self.body.get("resultUrl")


def _present(**fields: Any) -> dict[str, Any]:
    """The fields that are set (a resource never carries null)."""
    return {k: v for k, v in fields.items() if v is not None}


def to_resource(
    job: Job,
    *,
    job_url: str,
    status_variables: list[str],
    result_url: str | None,
) -> Resource:
    duration = None
    if job.started_at is not None and job.completed_at is not None:
        duration = float(round(job.completed_at - job.started_at, 3))
    progress = None
    if job.progress_percent is not None:
        progress = _present(percent=float(job.progress_percent), message=job.progress_message)
    error = None
    if job.error_code:
        error = {"code": job.error_code, "message": job.error_message or ""}
    callback = None
    if job.callback_url:
        callback = _present(
            url=job.callback_url, state=job.callback_state,
            attempts=int(job.callback_attempts), lastAttemptAt=iso(job.callback_last_at),
            lastError=job.callback_last_error or None,
        )
    has_result = bool(job.result_key)
    return Resource(_present(
        jobId=job.job_id,
        runId=job.run_id,
        service=job.service,
        status=job.status,
        createdAt=iso(job.created_at) or "",
        startedAt=iso(job.started_at),
        completedAt=iso(job.completed_at),
        duration=duration,
        attempts=int(job.attempts),
        maxAttempts=int(job.max_attempts),
        retryAt=iso(retry_time(job)),
        progress=progress,
        variables={k: v for k, v in job.status_vars.items() if k in status_variables},
        resultUrl=result_url,
        resultType=job.result_type if has_result else None,
        resultSize=int(job.result_size) if has_result and job.result_size is not None else None,
        validUntil=iso(job.valid_until),
        expiresAt=iso(job.expires_at) or "",
        error=error,
        log=f"{job_url}/log",
        previous=job.previous,
        next=job.next,
        callback=callback,
    ))
