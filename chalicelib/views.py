"""How records become response bodies: the job resource (with its signed result link), the
webhook event, the service list; and following a result link."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from . import links, services
from .attributes import apply
from .errors import ApiError
from .jobs import Job, Resource, iso, presign_seconds, to_resource
from .ports import BlobPort, JobStorePort
from .settings import Settings

EVENT_TYPE = "job.finished"
log = logging.getLogger("jobgate.views")


class JobView:
    def __init__(self, blobs: BlobPort, settings: Settings, clock: Callable[[], float] = time.time,
                 tenant_of: Callable[[str], Any] | None = None,
                 stage_secret: Callable[[], bytes] | None = None):
        self.blobs, self.settings, self.clock = blobs, settings, clock
        self.tenant_of = tenant_of  # the tenant's webhook policy (compat formats)
        self.stage_secret = stage_secret  # the stage's generated secret (cursor_secret)

    def resource(self, job: Job, base: str | None = None) -> Resource:
        now = self.clock()
        base = base or job.base_url or ""
        result_url = None
        if job.result_valid(now):
            try:
                result_url = self.result_link(job, base)
            except links.MissingSecret:  # fail closed: no link rather than a guessable one
                log.error("JOBGATE_LINK_SECRET is not set: resultUrl left out")
        declared: list[str] = []
        if job.status_vars:  # only then does the service's declaration matter
            service = services.get(job.service)
            declared = list(service.status_variables) if service else []
        return to_resource(job, job_url=f"{base}/v1/jobs/{job.job_id}", result_url=result_url,
                           status_variables=declared)

    def result_link(self, job: Job, base: str) -> str:
        """`resultUrl`: our signed link to this job's result, valid until `validUntil`
        (absolute, from the request's base or the job's, so it keeps the stage prefix)."""
        link = links.Link(job.tenant, job.job_id, links.result_version(job.result_key or ""),
                          math.floor(job.valid_until or 0))
        return f"{base}/v1/results/{links.sign(self._link_key(), link)}"

    def follow_link(self, token: str, store: JobStorePort) -> str:
        """GET /v1/results/{token}: a fresh short presigned URL of the linked result.
        403 `invalid_link` (not signed by us: malformed or tampered), 410 `result_expired`
        (past `validUntil`), 404 `not_found` (the job or that result is gone)."""
        try:
            key = self._link_key()
        except links.MissingSecret:
            raise ApiError(503, "unavailable", "result links are not configured",
                           headers={"Retry-After": "60"}) from None
        try:
            link = links.verify(key, token)
        except links.InvalidLink:
            raise ApiError(403, "invalid_link", "this is not a valid result link") from None
        now = self.clock()
        if now > link.expires:
            raise ApiError(410, "result_expired", "the result is no longer available")
        job = store.get(link.tenant, link.job_id, now)
        if job is None or not job.result_key or \
                links.result_version(job.result_key) != link.version:
            raise ApiError(404, "not_found", "the linked result no longer exists")
        if not job.result_valid(now):
            raise ApiError(410, "result_expired", "the result is no longer available")
        seconds = presign_seconds(job.valid_until or now, now, self.settings.presign_max_seconds)
        return self.blobs.presign(job.result_key, seconds)

    def _link_key(self) -> bytes:
        """JOBGATE_LINK_SECRET when set; otherwise a key derived from the stage's generated
        secret (the one the infra stack makes for cursors), so a deployed stage signs links
        with no extra setting; off AWS without either, a per-process key (links.py)."""
        if not self.settings.link_secret and self.stage_secret is not None:
            return links.derive(self.stage_secret())
        return links.link_secret(self.settings.link_secret)

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

    def with_event(self, job: Job, status: str, values: dict[str, Any], now: float
                   ) -> dict[str, Any]:
        """A terminal write's `values` (item attribute names) with the webhook event added,
        rendered from the job as that write leaves it (`status`, ended `now`): a job with
        no callbackUrl gets `values` as they are."""
        if not job.callback_url:
            return values
        values = {**values, "callbackState": "pending"}
        ended = apply(job, {**values, "status": status, "completedAt": now})
        return {**values, "callbackEvent": self.event(ended)}


def services_body(settings: Settings) -> dict[str, Any]:
    from .models import ServiceInfo, ServiceList  # built by this route only

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
    from .models import Delivery  # built by this route only

    dropped = max(0, job.callback_attempts - len(job.deliveries))
    items = [Delivery(attempt=i + (dropped if i > 1 else 0), at=d["at"],
                      status_code=d.get("statusCode"), error=d.get("error") or None,
                      duration_ms=int(d.get("durationMs", 0))).dump()
             for i, d in enumerate(job.deliveries, start=1)]
    return {"deliveries": items}


def dashboard_html() -> str:
    from importlib.resources import files

    return (files(__package__) / "static" / "dashboard.html").read_text(encoding="utf-8")
