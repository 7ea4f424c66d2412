"""Jobgate's Lambda entry points: HTTP routes and SQS handlers, wired to chalicelib."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from chalice import Chalice, Response

from chalicelib import runtime, telemetry
from chalicelib.errors import ApiError
from chalicelib.http import (
    base_url,
    media_type,
    parse_prefer,
    parse_submit_body,
    query_params,
    render,
    render_error,
)
from chalicelib.jobs import retry_after
from chalicelib.views import deliveries_body

STAGE = os.environ.get("JOBGATE_STAGE", "dev")
PREFIX = os.environ.get("JOBGATE_QUEUE_PREFIX", f"jobgate-{STAGE}")
MAX_BODY = 4 * 1024 * 1024
RESERVED = {"runId": "runId", "callbackUrl": "callbackUrl", "logLevel": "logLevel"}

app = Chalice(app_name="jobgate")
telemetry.setup()
log = logging.getLogger("jobgate.api")
ANY = ["*/*"]  # media types are checked in our code, so errors keep our error body


def endpoint(path: str, methods: list[str], auth: bool = True) -> Callable[..., Any]:
    """Route with our own auth and error handling: every failure is our JSON/XML error."""

    def wrap(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handler(**params: str) -> Response:
            request = app.current_request
            try:
                rt = runtime.get()
                tenant = rt.tenants.authenticate(request.headers.get("authorization")) \
                    if auth else None
                with telemetry.bound(tenant=getattr(tenant, "name", None), route=path,
                                     jobId=params.get("jobId")):
                    return view(rt, request, tenant, **params)
            except ApiError as err:
                return render_error(request, err)
            except Exception:  # noqa: BLE001  (never a bare 500 body)
                log.exception("unhandled error on %s %s", request.method, path)
                return render_error(request, ApiError(
                    503, "unavailable", "temporarily unable to serve this request",
                    headers={"Retry-After": "5"}))

        return app.route(path, methods=methods, content_types=ANY)(handler)

    return wrap


@endpoint("/v1/health", ["GET"], auth=False)
def health(rt: Any, request: Any, tenant: Any) -> Response:
    return render(request, 200, {"status": "ok"}, root="health")


@endpoint("/openapi.json", ["GET"], auth=False)
def openapi(rt: Any, request: Any, tenant: Any) -> Response:
    from chalicelib.openapi import document

    return Response(body=json.dumps(document(base_url(request))), status_code=200,
                    headers={"Content-Type": "application/json"})


@endpoint("/dashboard", ["GET"], auth=False)
def dashboard(rt: Any, request: Any, tenant: Any) -> Response:
    """A small page to watch and submit jobs; it calls the API with the key typed into it."""
    from chalicelib.views import dashboard_html

    return Response(body=dashboard_html(), status_code=200, headers={
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache",
        "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                   "style-src 'unsafe-inline'; img-src 'self' data:; "
                                   "connect-src 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


@endpoint("/v1/services", ["GET"])
def list_services(rt: Any, request: Any, tenant: Any) -> Response:
    from chalicelib.views import services_body

    return render(request, 200, services_body(rt.settings), root="services")


@endpoint("/v1/jobs", ["POST"])
def submit(rt: Any, request: Any, tenant: Any) -> Response:
    req = rt.api.parse_request(parse_submit_body(request, MAX_BODY))
    submitted = rt.api.submit(tenant, req, base_url(request))
    return _accepted(rt, request, submitted)


@endpoint("/v1/services/{service}/jobs", ["POST"])
def submit_document(rt: Any, request: Any, tenant: Any, service: str) -> Response:
    """Hop's asyncRun: the raw body is the service's content, query parameters its variables."""
    content = request.raw_body or b""
    if len(content) > MAX_BODY:
        raise ApiError(413, "payload_too_large", f"the document exceeds {MAX_BODY} bytes")
    params = query_params(request)
    fields = {name: params.pop(key) for key, name in RESERVED.items() if key in params}
    req = rt.api.parse_request({"service": service, "variables": params, **fields})
    submitted = rt.api.submit(tenant, req, base_url(request), content=content,
                              content_type=media_type(request) or None)
    return _accepted(rt, request, submitted)


@endpoint("/v1/jobs", ["GET"])
def list_jobs(rt: Any, request: Any, tenant: Any) -> Response:
    jobs, cursor = rt.api.list(tenant, query_params(request))
    base = base_url(request)
    body = {"jobs": [rt.api.resource(j, base).dump() for j in jobs], "nextCursor": cursor}
    return render(request, 200, body, root="jobs")


@endpoint("/v1/jobs/{jobId}", ["GET"])
def get_job(rt: Any, request: Any, tenant: Any, jobId: str) -> Response:  # noqa: N803
    job = rt.api.get(tenant, jobId)
    headers = {} if job.terminal else {"Retry-After": str(retry_after(job))}
    return render(request, 200, rt.api.resource(job, base_url(request)).dump(), headers)


@endpoint("/v1/jobs/{jobId}", ["DELETE"])
def delete_job(rt: Any, request: Any, tenant: Any, jobId: str) -> Response:  # noqa: N803
    rt.api.delete(tenant, jobId)
    return Response(body="", status_code=204)


@endpoint("/v1/jobs/{jobId}/cancel", ["POST"])
def cancel_job(rt: Any, request: Any, tenant: Any, jobId: str) -> Response:  # noqa: N803
    job, was_running = rt.api.cancel(tenant, jobId)
    rt.after_end(job)
    return render(request, 202 if was_running else 200,
                  rt.api.resource(job, base_url(request)).dump())


@endpoint("/v1/jobs/{jobId}/deliveries", ["GET"])
def list_deliveries(rt: Any, request: Any, tenant: Any, jobId: str) -> Response:  # noqa: N803
    job = rt.api.get(tenant, jobId)
    return render(request, 200, deliveries_body(job), root="deliveries")


@endpoint("/v1/jobs/{jobId}/deliveries", ["POST"])
def redeliver(rt: Any, request: Any, tenant: Any, jobId: str) -> Response:  # noqa: N803
    job = rt.api.redeliver(tenant, jobId)
    rt.redeliver(job)
    return render(request, 202, rt.api.resource(job, base_url(request)).dump())


@endpoint("/v1/jobs/{jobId}/result", ["GET"])
def get_result(rt: Any, request: Any, tenant: Any, jobId: str) -> Response:  # noqa: N803
    url = rt.api.result_location(tenant, jobId)
    return Response(body="", status_code=303, headers={"Location": url, "Cache-Control": "no-store"})


@endpoint("/v1/results/{token}", ["GET"], auth=False)
def follow_result_link(rt: Any, request: Any, tenant: Any, token: str) -> Response:
    """A job's `resultUrl`: the link is the credential (signed, until `validUntil`)."""
    url = rt.view.follow_link(token, rt.store)
    return Response(body="", status_code=303, headers={"Location": url, "Cache-Control": "no-store",
                                                        "Referrer-Policy": "no-referrer"})


@endpoint("/v1/jobs/{jobId}/log", ["GET"])
def get_log(rt: Any, request: Any, tenant: Any, jobId: str) -> Response:  # noqa: N803
    url, text = rt.api.log(tenant, jobId)
    if url:
        return Response(body="", status_code=303, headers={"Location": url})
    return Response(body=text, status_code=200,
                    headers={"Content-Type": "text/plain; charset=utf-8"})


def _accepted(rt: Any, request: Any, submitted: Any) -> Response:
    """202 (or 200 for a replayed runId, or for a job that ended within Prefer: wait)."""
    job = submitted.job
    base = base_url(request)
    headers = {"Location": f"{base}/v1/jobs/{job.job_id}"}
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    respond_async, wait = parse_prefer(request.headers.get("prefer"))
    applied = []
    if wait is not None and not job.terminal:
        job = rt.api.wait_for_end(job, wait)
    if wait is not None:
        applied.append(f"wait={wait}")
    if job.terminal or submitted.replayed:
        if job.terminal and wait is not None:
            headers["Preference-Applied"] = applied[0]
        status = 200
    else:
        if respond_async:
            applied.insert(0, "respond-async")
        if applied:
            headers["Preference-Applied"] = ", ".join(applied)
        headers["Retry-After"] = "1"
        status = 202
    return render(request, status, rt.api.resource(job, base).dump(), headers)


# -- SQS handlers ----------------------------------------------------------------------------

@app.on_sqs_message(queue=f"{PREFIX}-jobs", batch_size=5)
def run_jobs(event: Any) -> dict[str, Any]:
    from chalicelib import batch

    rt = runtime.get()
    return batch.process(  # Lambda's time left, measured as each record starts
        event.to_dict(),
        lambda r: rt.handle_job_record(r, runtime.lambda_time_left(event.context)),
        rt.clients.sqs, rt.queue_url)


@app.on_sqs_message(queue=f"{PREFIX}-jobs-dlq", batch_size=10)
def fail_dead_jobs(event: Any) -> dict[str, Any]:
    from chalicelib import batch

    rt = runtime.get()
    return batch.process(event.to_dict(), rt.handle_dead_job, rt.clients.sqs, rt.queue_url)


@app.on_sqs_message(queue=f"{PREFIX}-callbacks", batch_size=10)
def deliver_callbacks(event: Any) -> dict[str, Any]:
    from chalicelib import batch

    rt = runtime.get()
    return batch.process(event.to_dict(), rt.handle_callback_record, rt.clients.sqs, rt.queue_url)
