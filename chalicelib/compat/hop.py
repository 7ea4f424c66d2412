"""Apache Hop's asynchronous web service: `hop/asyncRun` and `hop/asyncStatus`.

Hop's page extracts the run id with `sed 's/^.*"id":"//' | sed 's/"}$//'`, so the run
answer is compact JSON whose last field is `id`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chalice.app import Request, Response

from .. import services, xmlcodec
from ..errors import ApiError, bad_request, not_found
from ..httpio import base_url, media_type, query_params, raw_body
from ..jobs import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job, iso

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..tenants import Tenant

MAX_BODY = 4 * 1024 * 1024
RESERVED = {"runId": "runId", "callbackUrl": "callbackUrl", "logLevel": "logLevel"}
IGNORED = ("runConfig",)  # Hop picks a run configuration; a service has exactly one here
STATUS = {QUEUED: "Waiting", RUNNING: "Running", SUCCEEDED: "Finished",
          FAILED: "Finished (with errors)", CANCELED: "Stopped"}


def run(rt: Runtime, request: Request, tenant: Tenant) -> Response:
    """`asyncRun?service=NAME&VAR=value`: the body (if any) is the content variable."""
    params = query_params(request)
    service = params.pop("service", "")
    if not service:
        raise bad_request("the service parameter is required (service=NAME)",
                          "invalid_parameter")
    content = raw_body(request) or None
    if content is not None and len(content) > MAX_BODY:
        raise ApiError(413, "payload_too_large", f"the document exceeds {MAX_BODY} bytes")
    for name in IGNORED:
        params.pop(name, None)
    fields = {name: params.pop(key) for key, name in RESERVED.items() if key in params}
    req = rt.api.parse_request({"service": service, "variables": params, **fields})
    submitted = rt.api.submit(tenant, req, base_url(request), content=content,
                              content_type=(media_type(request) or None) if content else None)
    return _json(200, run_answer(submitted.job))


def run_answer(job: Job) -> dict[str, Any]:
    return {"name": job.service, "id": job.job_id}  # `id` last: the page's sed line


def status(rt: Runtime, request: Request, tenant: Tenant) -> Response:
    """`asyncStatus?service=NAME&id=ID`, JSON by default, XML with `xml=Y`."""
    params = query_params(request)
    job_id, service = params.get("id", ""), params.get("service", "")
    if not job_id:
        raise bad_request("the id parameter is required (id=ID)", "invalid_parameter")
    job = rt.api.get(tenant, job_id)
    if service and service != job.service:
        raise not_found()  # as Hop: that service has no such run
    body = status_body(job)
    if params.get("xml", "").upper() == "Y" and params.get("json", "").upper() != "Y":
        return Response(body=xmlcodec.dumps("asyncStatus", body), status_code=200,
                        headers={"Content-Type": "application/xml"})
    return _json(200, body)


def status_body(job: Job) -> dict[str, Any]:
    declared = services.get(job.service)
    names = declared.status_variables if declared else ()
    return {"service": job.service, "id": job.job_id, "startDate": iso(job.started_at),
            "endDate": iso(job.completed_at), "statusDescription": STATUS[job.status],
            "statusVariables": {n: job.status_vars.get(n) for n in names}}


def _json(status_code: int, body: dict[str, Any]) -> Response:
    return Response(body=json.dumps(body, separators=(",", ":")), status_code=status_code,
                    headers={"Content-Type": "application/json"})
