"""Shoptet's asynchronous requests: job detail and list under `/api/system/jobs`, in
Shoptet's `{"data": ...}` wrappers, status words and times; `Shoptet-Access-Token`
credentials; and Shoptet's `job:finished` webhook body."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalice.app import Request, Response

from ..httpio import base_url, query_params
from ..jobs import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job
from ..tenants import Tenant, unauthorized

if TYPE_CHECKING:
    from ..runtime import Runtime

STATUS = {QUEUED: "pending", RUNNING: "running", SUCCEEDED: "completed", FAILED: "failed",
          CANCELED: "canceled"}
OURS = {v: k for k, v in STATUS.items()}
LOG_CAP = 64 * 1024  # characters of log in a job detail; the full log is at /v1/jobs/{id}/log
EVENT = "job:finished"


def authenticate(rt: Runtime, request: Request) -> Tenant:
    """`Shoptet-Access-Token: <api key>` (these routes only), else the usual Authorization.
    Every credential sent must be valid: a wrong one is never rescued by the other."""
    token = request.headers.get("shoptet-access-token")
    authorization = request.headers.get("authorization")
    if token is not None:  # sent, even blank: it must be valid
        token = token.strip()
        if not token:
            raise unauthorized("empty Shoptet-Access-Token")
        tenant = rt.tenants.authenticate(f"Bearer {token}")
        if authorization and rt.tenants.authenticate(authorization).name != tenant.name:
            raise unauthorized("the two credentials name different tenants")
        return tenant
    return rt.tenants.authenticate(authorization)


def stamp(ts: float | None) -> str | None:
    """Shoptet's times carry an explicit offset (`+00:00`), to the second."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def summary(rt: Runtime, job: Job, base: str) -> dict[str, Any]:
    resource = rt.api.resource(job, base)
    return {
        "jobId": job.job_id,
        "endpoint": f"/v1/services/{job.service}/jobs",
        "creationTime": stamp(job.created_at),
        "completionTime": stamp(job.completed_at),
        "duration": None if resource.duration is None else f"{resource.duration:.3f}",
        "status": STATUS[job.status],
        "resultUrl": resource.result_url,
        "validUntil": stamp(job.valid_until) if resource.result_url else None,
    }


def capped_log(rt: Runtime, tenant: Tenant, job: Job, base: str) -> str:
    url, text = rt.api.log(tenant, job.job_id)
    full = f"{base}/v1/jobs/{job.job_id}/log"
    if url:
        return f"(the log is too long to show here; read it at {full})"
    if len(text) > LOG_CAP:
        return text[:LOG_CAP] + f"\n(truncated; the full log is at {full})"
    return text


def job_detail(rt: Runtime, request: Request, job_id: str) -> Response:
    tenant = authenticate(rt, request)
    job = rt.api.get(tenant, job_id)
    base = base_url(request)
    data = {**summary(rt, job, base), "log": capped_log(rt, tenant, job, base)}
    return _json({"data": data})


def job_list(rt: Runtime, request: Request) -> Response:
    """Newest first; `status` takes Shoptet's words; `limit` and `cursor` as GET /v1/jobs."""
    tenant = authenticate(rt, request)
    params = query_params(request)
    if params.get("status"):
        params["status"] = OURS.get(params["status"], params["status"])
    jobs, cursor = rt.api.list(tenant, params)
    base = base_url(request)
    return _json({"data": {"jobs": [summary(rt, j, base) for j in jobs], "nextCursor": cursor}})


def webhook_event(job: Job) -> str:
    """Shoptet's webhook: `eventInstance` is the job ID; `eshopId` is the tenant."""
    body = {"eshopId": job.tenant, "event": EVENT, "eventCreated": stamp(job.completed_at),
            "eventInstance": job.job_id}
    return json.dumps(body, separators=(",", ":"))


def _json(body: dict[str, Any]) -> Response:
    return Response(body=json.dumps(body, separators=(",", ":")), status_code=200,
                    headers={"Content-Type": "application/json"})
