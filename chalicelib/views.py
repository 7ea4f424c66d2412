"""How records become response bodies: the job resource (with a fresh presigned result
URL), the webhook event, the service list."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from . import services
from .blobs import BlobStore
from .jobs import Job, iso, presign_seconds, to_resource
from .models import Delivery, JobResource, ServiceInfo, ServiceList
from .settings import Settings

EVENT_TYPE = "job.finished"


class JobView:
    def __init__(self, blobs: BlobStore, settings: Settings, clock: Callable[[], float] = time.time,
                 tenant_of: Callable[[str], Any] | None = None):
        self.blobs, self.settings, self.clock = blobs, settings, clock
        self.tenant_of = tenant_of  # the tenant's webhook policy (compat formats)

    def resource(self, job: Job, base: str | None = None) -> JobResource:
        now = self.clock()
        result_url = None
        if job.result_valid(now):
            seconds = presign_seconds(job.valid_until or now, now, self.settings.presign_max_seconds)
            result_url = self.blobs.presign(job.result_key or "", seconds)
        service = services.get(job.service)
        base = base or job.base_url or ""
        return to_resource(
            job, job_url=f"{base}/v1/jobs/{job.job_id}", result_url=result_url,
            status_variables=list(service.status_variables) if service else [],
        )

    def event(self, job: Job) -> str:
        """The webhook body for the job's end, rendered once and stored with the terminal
        state, so every retry sends the very same event."""
        data = self.resource(job).dump()
        data.pop("callback", None)
        body = {"type": EVENT_TYPE, "timestamp": iso(job.completed_at), "data": data}
        standard = json.dumps(body, separators=(",", ":"))
        if self.tenant_of is None:
            return standard
        from .compat import events

        return events.render(job, self.tenant_of(job.tenant), standard)


def services_body(settings: Settings) -> dict[str, Any]:
    items = [
        ServiceInfo(
            name=s.name, enabled=s.name not in settings.disabled_services,
            description=s.description, input_schema=s.input_schema(),
            status_variables=list(s.status_variables), content_variable=s.content_variable,
            timeout_seconds=s.timeout_seconds,
            result_ttl_seconds=s.result_ttl_seconds or settings.result_ttl_seconds,
            runs_on=s.runs_on,
        )
        for s in services.all_services()
    ]
    return ServiceList(services=items).dump()


def deliveries_body(job: Job) -> dict[str, Any]:
    """The recorded webhook attempts, oldest first, each with its true number: the store
    keeps the first and the last few, so numbers jump where attempts were dropped."""
    dropped = max(0, job.callback_attempts - len(job.deliveries))
    items = [Delivery(attempt=i + (dropped if i > 1 else 0), at=d["at"],
                      status_code=d.get("statusCode"), error=d.get("error") or None,
                      duration_ms=int(d.get("durationMs", 0))).dump()
             for i, d in enumerate(job.deliveries, start=1)]
    return {"deliveries": items}


def dashboard_html() -> str:
    from importlib.resources import files

    return (files(__package__) / "static" / "dashboard.html").read_text(encoding="utf-8")
