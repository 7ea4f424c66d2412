"""Jobgate's Lambda entry points: HTTP routes and SQS handlers, wired to chalicelib."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalice.app import Chalice, Rate, Request, Response, SQSEvent

from chalicelib import runtime, telemetry
from chalicelib.compat import guidewire
from chalicelib.errors import ApiError
from chalicelib.httpio import (
    base_url,
    media_type,
    parse_prefer,
    parse_submit_body,
    query_params,
    raw_body,
    render,
    render_error,
)
from chalicelib.jobs import retry_after
from chalicelib.ports import Unavailable
from chalicelib.tenants import Unauthorized
from chalicelib.views import deliveries_body

if TYPE_CHECKING:  # annotations only: nothing more is imported at cold start
    from chalicelib.api import Submitted
    from chalicelib.runtime import Runtime
    from chalicelib.tenants import Tenant
    from chalicelib.workerkeys import WorkerKey

STAGE = os.environ.get("JOBGATE_STAGE", "dev")
PREFIX = os.environ.get("JOBGATE_QUEUE_PREFIX", f"jobgate-{STAGE}")
MAX_BODY = 4 * 1024 * 1024
MAX_WORKER_BODY = 300 * 1024  # an inline result is at most 256 KB
RESERVED = {"runId": "runId", "callbackUrl": "callbackUrl", "logLevel": "logLevel"}

app = Chalice(app_name="jobgate")
telemetry.setup()
log = logging.getLogger("jobgate.api")
ANY = ["*/*"]  # media types are checked in our code, so errors keep our error body


# A route's view: (runtime, request, tenant — None on routes without auth, **path params).
View = Callable[..., Response]
WorkerCall = Callable[["WorkerKey", str, dict[str, Any]], dict[str, Any]]


def current_request() -> Request:
    """The request being served (Chalice sets it before calling a route's view)."""
    request = app.current_request
    assert request is not None, "called outside a request"
    return request


def unexpected(exc: Exception, method: str, path: str) -> ApiError:
    """An error no layer turned into an answer. AWS not answering (our Unavailable, or a
    botocore error from a call no adapter wraps) is a 503 worth retrying; anything else is
    a bug: a 500, with its traceback logged (bad input never gets here: it is a 4xx)."""
    if isinstance(exc, Unavailable) or type(exc).__module__.startswith("botocore"):
        log.warning("AWS unavailable on %s %s: %r", method, path, exc)
        return ApiError(503, "unavailable", "temporarily unable to serve this request",
                        headers={"Retry-After": "5"})
    log.exception("unhandled error on %s %s", method, path)
    return ApiError(500, "internal_error", "an internal error occurred; it was logged")


def endpoint(path: str, methods: list[str], auth: bool = True) -> Callable[[View], View]:
    """Route with our own auth and error handling: every failure is our JSON/XML error."""

    def wrap(view: View) -> View:
        @functools.wraps(view)
        def handler(**params: str) -> Response:
            request = current_request()
            try:
                rt = runtime.get()
                tenant = rt.tenants.authenticate(request.headers.get("authorization")) \
                    if auth else None
                with telemetry.bound(tenant=getattr(tenant, "name", None), route=path,
                                     jobId=params.get("jobId")):
                    return view(rt, request, tenant, **params)
            except ApiError as err:
                return render_error(request, err)
            except Unauthorized as err:
                return render_error(request, ApiError(
                    401, "unauthorized", err.message,
                    headers={"WWW-Authenticate": err.challenge}))
            except Exception as exc:  # noqa: BLE001  (never Chalice's bare 500 body)
                return render_error(request, unexpected(exc, request.method, path))

        app.route(path, methods=methods, content_types=ANY)(handler)
        return handler

    return wrap


@endpoint("/v1/health", ["GET"], auth=False)
def health(rt: Runtime, request: Request, tenant: None) -> Response:
    return render(request, 200, {"status": "ok"}, root="health")


@endpoint("/openapi.json", ["GET"], auth=False)
def openapi(rt: Runtime, request: Request, tenant: None) -> Response:
    from chalicelib.openapi import document

    return Response(body=json.dumps(document(base_url(request))), status_code=200,
                    headers={"Content-Type": "application/json"})


@endpoint("/dashboard", ["GET"], auth=False)
def dashboard(rt: Runtime, request: Request, tenant: None) -> Response:
    """A small page to watch and submit jobs; it calls the API with the key typed into it."""
    from chalicelib.views import dashboard_html

    return Response(body=dashboard_html(), status_code=200, headers={
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache",
        "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                   "style-src 'unsafe-inline'; img-src 'self' data:; "
                                   "connect-src 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


@endpoint("/favicon.ico", ["GET"], auth=False)
def favicon(rt: Runtime, request: Request, tenant: None) -> Response:
    """Browsers ask for it on their own: no icon, and no 401/404 in the console."""
    return Response(body="", status_code=204, headers={"Cache-Control": "public, max-age=86400"})


@endpoint("/v1/services", ["GET"])
def list_services(rt: Runtime, request: Request, tenant: Tenant) -> Response:
    from chalicelib.views import services_body

    return render(request, 200, services_body(rt.settings), root="services")


@endpoint("/v1/jobs", ["POST"])
def submit(rt: Runtime, request: Request, tenant: Tenant) -> Response:
    req = rt.api.parse_request(parse_submit_body(request, MAX_BODY))
    submitted = rt.api.submit(tenant, req, base_url(request))
    return _accepted(rt, request, submitted)


@endpoint("/v1/services/{service}/jobs", ["POST"])
def submit_document(rt: Runtime, request: Request, tenant: Tenant, service: str) -> Response:
    """Hop's asyncRun: the raw body is the service's content, query parameters its variables."""
    content = raw_body(request)
    if len(content) > MAX_BODY:
        raise ApiError(413, "payload_too_large", f"the document exceeds {MAX_BODY} bytes")
    params = query_params(request)
    fields = {name: params.pop(key) for key, name in RESERVED.items() if key in params}
    req = rt.api.parse_request({"service": service, "variables": params, **fields})
    submitted = rt.api.submit(tenant, req, base_url(request), content=content,
                              content_type=media_type(request) or None)
    return _accepted(rt, request, submitted)


@endpoint("/v1/jobs", ["GET"])
def list_jobs(rt: Runtime, request: Request, tenant: Tenant) -> Response:
    jobs, cursor = rt.api.list(tenant, query_params(request))
    base = base_url(request)
    body = {"jobs": [rt.api.resource(j, base).dump() for j in jobs], "nextCursor": cursor}
    return render(request, 200, body, root="jobs")


@endpoint("/v1/jobs/{jobId}", ["GET"])
def get_job(rt: Runtime, request: Request, tenant: Tenant, jobId: str) -> Response:  # noqa: N803
    job = rt.api.get(tenant, jobId)
    headers = {} if job.terminal else {"Retry-After": str(retry_after(job))}
    return render(request, 200, rt.api.resource(job, base_url(request)).dump(), headers)


@endpoint("/v1/jobs/{jobId}", ["DELETE"])
def delete_job(rt: Runtime, request: Request, tenant: Tenant, jobId: str) -> Response:  # noqa: N803
    rt.api.delete(tenant, jobId)
    return Response(body="", status_code=204)


@endpoint("/v1/jobs/{jobId}/cancel", ["POST"])
def cancel_job(rt: Runtime, request: Request, tenant: Tenant, jobId: str) -> Response:  # noqa: N803
    job, was_running = rt.api.cancel(tenant, jobId)
    rt.ends.after_end(job)
    return render(request, 202 if was_running else 200,
                  rt.api.resource(job, base_url(request)).dump())


@endpoint("/v1/jobs/{jobId}/deliveries", ["GET"])
def list_deliveries(rt: Runtime, request: Request, tenant: Tenant, jobId: str) -> Response:  # noqa: N803
    job = rt.api.get(tenant, jobId)
    return render(request, 200, deliveries_body(job), root="deliveries")


@endpoint("/v1/jobs/{jobId}/deliveries", ["POST"])
def redeliver(rt: Runtime, request: Request, tenant: Tenant, jobId: str) -> Response:  # noqa: N803
    job, before = rt.api.redeliver(tenant, jobId)
    rt.ends.redeliver(job, before)
    return render(request, 202, rt.api.resource(job, base_url(request)).dump())


@endpoint("/v1/jobs/{jobId}/result", ["GET"])
def get_result(rt: Runtime, request: Request, tenant: Tenant, jobId: str) -> Response:  # noqa: N803
    url = rt.api.result_location(tenant, jobId)
    return Response(body="", status_code=303, headers={"Location": url, "Cache-Control": "no-store"})


@endpoint("/v1/results/{token}", ["GET"], auth=False)
def follow_result_link(rt: Runtime, request: Request, tenant: None, token: str) -> Response:
    """A job's `resultUrl`: the link is the credential (signed, until `validUntil`)."""
    url = rt.view.follow_link(token, rt.store)
    return Response(body="", status_code=303, headers={"Location": url, "Cache-Control": "no-store",
                                                        "Referrer-Policy": "no-referrer"})


@endpoint("/v1/jobs/{jobId}/log", ["GET"])
def get_log(rt: Runtime, request: Request, tenant: Tenant, jobId: str) -> Response:  # noqa: N803
    url, text = rt.api.log(tenant, jobId)
    if url:
        return Response(body="", status_code=303, headers={"Location": url})
    return Response(body=text, status_code=200,
                    headers={"Content-Type": "text/plain; charset=utf-8"})


# -- worker routes (docs/api.md "Workers"): worker keys only; logic in chalicelib/workers.py --

@endpoint("/v1/worker/claim", ["POST"], auth=False)
def worker_claim(rt: Runtime, request: Request, tenant: None) -> Response:
    key = rt.workers.authenticate(request.headers.get("authorization"))
    claimed = rt.workers.claim(key, _worker_body(request))
    if claimed is None:
        return Response(body="", status_code=204)
    return render(request, 200, claimed, root="claim")


@endpoint("/v1/worker/jobs/{jobId}/heartbeat", ["POST"], auth=False)
def worker_heartbeat(rt: Runtime, request: Request, tenant: None, jobId: str) -> Response:  # noqa: N803
    return _worker_call(rt, request, rt.workers.heartbeat, jobId, "heartbeat")


@endpoint("/v1/worker/jobs/{jobId}/complete", ["POST"], auth=False)
def worker_complete(rt: Runtime, request: Request, tenant: None, jobId: str) -> Response:  # noqa: N803
    return _worker_call(rt, request, rt.workers.complete, jobId, "complete")


@endpoint("/v1/worker/jobs/{jobId}/fail", ["POST"], auth=False)
def worker_fail(rt: Runtime, request: Request, tenant: None, jobId: str) -> Response:  # noqa: N803
    return _worker_call(rt, request, rt.workers.fail, jobId, "fail")


def _worker_call(rt: Runtime, request: Request, call: WorkerCall, job_id: str,
                 root: str) -> Response:
    key = rt.workers.authenticate(request.headers.get("authorization"))
    return render(request, 200, call(key, job_id, _worker_body(request)), root=root)


def _worker_body(request: Request) -> dict[str, Any]:
    """A worker route's JSON body (an empty body is an empty object)."""
    if not request.raw_body:
        return {}
    return parse_submit_body(request, MAX_WORKER_BODY)


# -- compatibility routes: the source APIs' own clients (docs/api.md, chalicelib/compat/) ----
# Chalice refuses routes ending in '/', and both API Gateway and chalice's local server
# drop a trailing slash before matching: `/hop/asyncRun/` reaches `/hop/asyncRun`.

@endpoint("/hop/asyncRun", ["GET", "POST"])
def hop_async_run(rt: Runtime, request: Request, tenant: Tenant) -> Response:
    from chalicelib.compat import hop

    return hop.run(rt, request, tenant)


@endpoint("/hop/asyncStatus", ["GET", "POST"])
def hop_async_status(rt: Runtime, request: Request, tenant: Tenant) -> Response:
    from chalicelib.compat import hop

    return hop.status(rt, request, tenant)


@endpoint("/async/v1/requests/{requestId}", ["GET"])
def gw_request(rt: Runtime, request: Request, tenant: Tenant, requestId: str) -> Response:  # noqa: N803
    from chalicelib.compat import guidewire

    return guidewire.request_status(rt, request, tenant, requestId)


@endpoint("/async/v1/requests/{requestId}/response", ["GET"])
def gw_response(rt: Runtime, request: Request, tenant: Tenant, requestId: str) -> Response:  # noqa: N803
    from chalicelib.compat import guidewire

    return guidewire.request_response(rt, request, tenant, requestId)


@endpoint("/api/system/jobs", ["GET"], auth=False)  # Shoptet-Access-Token: see shoptet.py
def shoptet_jobs(rt: Runtime, request: Request, tenant: None) -> Response:
    from chalicelib.compat import shoptet

    return shoptet.job_list(rt, request)


@endpoint("/api/system/jobs/{jobId}", ["GET"], auth=False)
def shoptet_job(rt: Runtime, request: Request, tenant: None, jobId: str) -> Response:  # noqa: N803
    from chalicelib.compat import shoptet

    return shoptet.job_detail(rt, request, jobId)


@endpoint("/v1/ExecuteJobAsync", ["POST"])
def starfish_execute(rt: Runtime, request: Request, tenant: Tenant) -> Response:
    from chalicelib.compat import starfish

    return starfish.execute(rt, request, tenant)


def _accepted(rt: Runtime, request: Request, submitted: Submitted) -> Response:
    """202 (or 200 for a replayed runId, or for a job that ended within Prefer: wait)."""
    job = submitted.job
    base = base_url(request)
    headers = {"Location": f"{base}/v1/jobs/{job.job_id}"}
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    respond_async, wait, wait_applied = parse_prefer(request.headers.get("prefer"))
    applied = []
    if wait is not None and not job.terminal:
        job = rt.api.wait_for_end(job, wait)
    if wait_applied is not None:
        applied.append(wait_applied)
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
        headers["GW-Async-Location"] = guidewire.async_location(base, job.job_id)
        status = 202
    return render(request, status, rt.api.resource(job, base).dump(), headers)


# -- SQS handlers ----------------------------------------------------------------------------

# One job per invocation: every job starts with the whole invocation (a 830 s service
# always fits in the 900 s function), no job waits behind another of its batch, and no
# record is put back for lack of time (each put-back counts toward the queue's
# maxReceiveCount). docs/design.md "Time limits" has the figures.
JOBS_BATCH_SIZE = 1


@app.on_sqs_message(queue=f"{PREFIX}-jobs", batch_size=JOBS_BATCH_SIZE)
def run_jobs(event: SQSEvent) -> dict[str, Any]:
    from chalicelib import batch
    from chalicelib.records import lambda_time_left

    rt = runtime.get()
    return batch.process(  # Lambda's time left, measured as each record starts
        event.to_dict(),
        lambda r: rt.records.handle_job_record(r, lambda_time_left(event.context)),
        rt.dispatcher, rt.records.queue_url)


@app.on_sqs_message(queue=f"{PREFIX}-jobs-dlq", batch_size=10)
def fail_dead_jobs(event: SQSEvent) -> dict[str, Any]:
    from chalicelib import batch

    rt = runtime.get()
    return batch.process(event.to_dict(), rt.records.handle_dead_job, rt.dispatcher,
                         rt.records.queue_url)


@app.on_sqs_message(queue=f"{PREFIX}-callbacks", batch_size=10)
def deliver_callbacks(event: SQSEvent) -> dict[str, Any]:
    from chalicelib import batch

    rt = runtime.get()
    return batch.process(event.to_dict(), rt.records.handle_callback_record, rt.dispatcher,
                         rt.records.queue_url)


@app.on_sqs_message(queue=f"{PREFIX}-callbacks-dlq", batch_size=10)
def fail_dead_callbacks(event: SQSEvent) -> dict[str, Any]:
    from chalicelib import batch

    rt = runtime.get()
    return batch.process(event.to_dict(), rt.records.handle_dead_callback, rt.dispatcher,
                         rt.records.queue_url)


# Every minute: Jobgate/WorkerJobsWaiting per worker service, for scaling workers on it
# (infra/worker-fargate.yaml, docs/workers.md "Scaling on the queue depth").
@app.schedule(Rate(1, unit=Rate.MINUTES))
def publish_worker_metrics(event: Any) -> dict[str, int]:
    return runtime.get().workers.publish_waiting(STAGE)


# -- unknown routes and wrong methods: our error body on every deploy path -------------------
# Keep this last: it completes every route registered above. API Gateway answers a path it
# has no resource for with `403 Missing Authentication Token` and a method a resource lacks
# the same way, in its own format. So every other method is registered on each known path
# (405 with Allow), and a greedy `/{proxy+}` (plus `/`) catches unknown paths (404).

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
FALLBACK_ROUTES: set[tuple[str, str]] = set()  # (method, path) answering only 404/405


def _complete_routes() -> None:
    for path in list(app.routes):
        allowed = ", ".join([m for m in METHODS if m in app.routes[path]] + ["OPTIONS"])
        missing = [m for m in METHODS if m not in app.routes[path]]
        FALLBACK_ROUTES.update((m, path) for m in missing)
        if missing:
            name = "methods_of_" + "".join(c if c.isalnum() else "_" for c in path)
            app.route(path, methods=missing, content_types=ANY, name=name)(
                _wrong_method(allowed, name))
    for path in ("/", "/{proxy+}"):
        FALLBACK_ROUTES.update((m, path) for m in METHODS)
        app.route(path, methods=list(METHODS), content_types=ANY,
                  name="unknown_route" + ("_root" if path == "/" else ""))(_unknown_route)


def _wrong_method(allowed: str, name: str) -> Callable[..., Response]:
    def view(**params: str) -> Response:
        request = current_request()
        if request.method == "OPTIONS":
            return Response(body="", status_code=204, headers={"Allow": allowed})
        return render_error(request, ApiError(
            405, "method_not_allowed", f"{request.method} is not allowed here; use {allowed}",
            headers={"Allow": allowed}))

    view.__name__ = name
    return view


def _unknown_route(**params: str) -> Response:
    return render_error(current_request(), ApiError(404, "not_found", "no such route"))


_complete_routes()
