"""Guidewire Cloud API's Async API: `GW-Async-Location` on a 202 and the
`/async/v1/requests/{id}` routes that read the job behind it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chalice.app import Request, Response

from ..jobs import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..tenants import Tenant

STATUS = {QUEUED: "Accepted", RUNNING: "In Progress", SUCCEEDED: "Complete", FAILED: "Failed",
          CANCELED: "Failed"}
INLINE_RESULT_BYTES = 64 * 1024  # larger (or non-JSON) results answer 303 to the result


def async_location(base: str, job_id: str) -> str:
    """Guidewire's absolute-path form, keeping API Gateway's stage prefix (`/api/...`)."""
    return f"{urlsplit(base).path.rstrip('/')}/async/v1/requests/{job_id}"


def _inline_result(rt: Runtime, job: Job) -> tuple[bool, Any]:
    """(found, parsed JSON result) for a small JSON result still valid, else (False, None)."""
    if not (job.status == SUCCEEDED and job.result_valid(rt.api.clock())
            and (job.result_type or "").split(";")[0].strip().endswith("json")
            and (job.result_size or 0) <= INLINE_RESULT_BYTES):
        return False, None
    data = rt.blobs.get(job.result_key or "")
    if data is None:
        return False, None
    try:
        return True, json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return False, None


def request_status(rt: Runtime, request: Request, tenant: Tenant, request_id: str) -> Response:
    job = rt.api.get(tenant, request_id)
    body: dict[str, Any] = {"id": job.job_id, "status": STATUS[job.status]}
    found, result = _inline_result(rt, job)
    if found:
        body["responseBodyJson"] = result
    elif job.status in (FAILED, CANCELED):
        body["responseBodyJson"] = {"error": {"code": job.error_code or job.status,
                                              "message": job.error_message or job.status}}
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json"}
    if not job.terminal:
        headers["Retry-After"] = "1"
    return Response(body=json.dumps(body, separators=(",", ":")), status_code=200,
                    headers=headers)


def request_response(rt: Runtime, request: Request, tenant: Tenant, request_id: str) -> Response:
    """The original call's answer: a small JSON result itself, else 303 to the result (404
    while there is none, 410 once it expired, as GET /v1/jobs/{id}/result)."""
    job = rt.api.get(tenant, request_id)
    found, result = _inline_result(rt, job)
    if found:
        return Response(body=json.dumps(result, separators=(",", ":")), status_code=200,
                        headers={"Content-Type": "application/json"})
    url = rt.api.result_location(tenant, request_id)
    return Response(body="", status_code=303, headers={"Location": url,
                                                       "Cache-Control": "no-store"})
