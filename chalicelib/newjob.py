"""A new job, queued: what a submit and a chain's next step both create, with the same
retention, attempt budget and (for a worker service) claim-index keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .jobs import QUEUED, Job
from .leases import make_claimable

if TYPE_CHECKING:
    from .services import Service
    from .settings import Settings


def queued_job(tenant: str, job_id: str, service_name: str, service: Service | None,
               settings: Settings, now: float, **fields: Any) -> Job:
    """`service`: the registered service (None: it is gone, the job runs on Lambda and
    fails there as unknown); `fields`: the rest of the Job's fields."""
    job = Job(tenant=tenant, job_id=job_id, service=service_name, status=QUEUED,
              created_at=now, expires_at=now + settings.job_ttl_seconds,
              max_attempts=(service.max_attempts if service else None)
              or settings.job_max_attempts, **fields)
    return make_claimable(job, service.runs_on if service else "lambda", now)
