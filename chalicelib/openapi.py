"""The OpenAPI 3.1 document served at GET /openapi.json.

Every body schema is generated from the pydantic models (models.py, openapi_models.py);
only routes, parameters, status codes and headers are written here, following docs/api.md.
Imported lazily, by that route only: nothing heavy happens at import time, and the
document is built once per process (then copied, with the caller's base URL).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

from .compat import openapi as compat_openapi
from .statuses import STATUSES

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
JSON, XML, TEXT = "application/json", "application/xml", "text/plain"
JOB_ID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"  # a ULID, as chalicelib.ids makes them

ERRORS: dict[int, str] = {
    400: "Malformed body or parameter.",
    401: "No or bad credentials.",
    404: "Not found.",
    409: "Conflict.",
    410: "The result has expired.",
    413: "The body is too large.",
    415: "Media type not accepted.",
    422: "The request or the input fails validation; `details` lists the field errors.",
    429: "The tenant is over its quota of active jobs; retry after `Retry-After` seconds.",
    503: "Cannot serve or queue now; retry after `Retry-After` seconds.",
}

DESCRIPTION = """\
Jobgate runs long jobs asynchronously: submit one and get its ID at once (`202 Accepted`),
then poll it (`GET /v1/jobs/{jobId}`, honouring `Retry-After`) or receive a signed
webhook (`job.finished`), and download the result through a short-lived presigned URL
(`GET /v1/jobs/{jobId}/result` answers `303 See Other`).

Every route answers JSON by default and XML when asked (`Accept: application/xml`;
element names equal the JSON field names). Errors always carry the `ErrorBody` shape.
Authenticate with `Authorization: Bearer <api key>` or HTTP Basic `<tenant>:<api key>`.
"""


def document(base_url: str) -> dict[str, Any]:
    """The OpenAPI document, with `servers` pointing at `base_url` (scheme://host[/stage])."""
    doc = copy.deepcopy(_document())
    doc["servers"] = [{"url": base_url.rstrip("/") or "/", "description": "this deployment"}]
    return doc


# -- building blocks -----------------------------------------------------------------------

def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _content(schema_ref: dict[str, str], xml_root: str) -> dict[str, Any]:
    """The same schema as JSON and as XML (root element `xml_root`)."""
    return {
        JSON: {"schema": schema_ref},
        XML: {"schema": {"allOf": [schema_ref], "xml": {"name": xml_root}}},
    }


def _headers(*names: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name in required:
            out[name] = {**_HEADERS[name], "required": True}
        else:
            out[name] = _ref("headers", name)
    return out


_HEADERS: dict[str, dict[str, Any]] = {
    "Location": {
        "description": "Absolute URL (keeps the deployment's stage prefix).",
        "schema": {"type": "string", "format": "uri"},
    },
    "Retry-After": {
        "description": "Seconds to wait before asking again.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Preference-Applied": {
        "description": "The `Prefer` preferences honoured (RFC 7240), e.g. `respond-async, wait=10`.",
        "schema": {"type": "string"},
    },
    "GW-Async-Location": {
        "description": "Guidewire's Async API path of this job, `/async/v1/requests/{jobId}` "
                       "(absolute path, with the deployment's stage prefix).",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this answer is the job an earlier request with the same "
                       "`runId` created.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "WWW-Authenticate": {
        "description": "The accepted schemes.",
        "schema": {"type": "string"},
    },
}


def _error(error_ref: dict[str, str], status: int, description: str | None = None) -> dict[str, Any]:
    resp: dict[str, Any] = {
        "description": description or ERRORS[status],
        "content": _content(error_ref, "error"),
    }
    if status in (429, 503):
        resp["headers"] = _headers("Retry-After", required=("Retry-After",))
    elif status == 401:
        resp["headers"] = _headers("WWW-Authenticate")
    return resp


def _see_other(description: str) -> dict[str, Any]:
    return {"description": description,
            "headers": _headers("Location", required=("Location",))}


def _param(name: str) -> dict[str, str]:
    return _ref("parameters", name)


_PARAMETERS: dict[str, dict[str, Any]] = {
    "JobId": {
        "name": "jobId", "in": "path", "required": True,
        "description": "The job's ID (a ULID). A job of another tenant is 404, like an unknown one.",
        "schema": {"type": "string", "pattern": JOB_ID_PATTERN},
    },
    "Prefer": {
        "name": "Prefer", "in": "header", "required": False,
        "description": "RFC 7240. `respond-async` is always honoured; `wait=N` (N ≤ 20, larger "
                       "counts as 20) answers 200 with the finished job when it ends within N "
                       "seconds, else 202. Applied preferences come back in `Preference-Applied`.",
        "schema": {"type": "string"}, "example": "respond-async, wait=10",
    },
    "Status": {
        "name": "status", "in": "query", "required": False, "allowEmptyValue": True,
        "description": "Only jobs in this state.",
        "schema": {"type": "string", "enum": list(STATUSES)},
    },
    "ServiceFilter": {
        "name": "service", "in": "query", "required": False, "allowEmptyValue": True,
        "description": "Only jobs of this service.", "schema": {"type": "string"},
    },
    "Limit": {
        "name": "limit", "in": "query", "required": False, "allowEmptyValue": True,
        "description": "Page size.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    "Cursor": {
        "name": "cursor", "in": "query", "required": False, "allowEmptyValue": True,
        "description": "`nextCursor` of the previous page (valid for the same filters only).",
        "schema": {"type": "string"},
    },
    "ServiceName": {
        "name": "service", "in": "path", "required": True, "description": "The service to run.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 64},
    },
    "RunId": {
        "name": "runId", "in": "query", "required": False,
        "description": "Reserved: the client's idempotency key (≤ 36 chars), as `runId` of POST /v1/jobs.",
        "schema": {"type": "string", "maxLength": 36},
    },
    "CallbackUrl": {
        "name": "callbackUrl", "in": "query", "required": False,
        "description": "Reserved: the webhook target, as `callbackUrl` of POST /v1/jobs.",
        "schema": {"type": "string", "maxLength": 2048},
    },
    "LogLevel": {
        "name": "logLevel", "in": "query", "required": False,
        "description": "Reserved: 0-3 (none, low, medium, high).",
        "schema": {"type": "integer", "minimum": 0, "maximum": 3, "default": 1},
    },
    "Variables": {
        "name": "variables", "in": "query", "required": False, "style": "form", "explode": True,
        "description": "Every other query parameter becomes a job variable (`?MAX=50000&argument=x`).",
        "schema": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

_WEBHOOK_HEADERS = [
    ("webhook-id", "The event ID: the same on every retry of this event (de-duplicate on it)."),
    ("webhook-timestamp", "Unix seconds of this attempt."),
    ("webhook-signature", "`v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\">` "
                          "keyed with the tenant's `whsec_` secret; several, space-separated, "
                          "while a secret is rotated (Standard Webhooks)."),
]


def _schemas() -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """(components.schemas, {model name: $ref}) generated from the pydantic models."""
    from pydantic import BaseModel
    from pydantic.json_schema import models_json_schema

    from . import models as m
    from .openapi_models import WebhookEvent

    requests: list[type[BaseModel]] = [m.SubmitRequest]
    responses: list[type[BaseModel]] = [m.JobResource, m.JobList, m.ErrorBody, m.ServiceList,
                                        m.DeliveryList, m.Health, WebhookEvent]
    keys, defs = models_json_schema(
        [(model, "validation") for model in requests]
        + [(model, "serialization") for model in responses],
        ref_template=REF, by_alias=True,
    )
    refs = {model.__name__: ref for (model, _mode), ref in keys.items()}
    return defs.get("$defs", {}), refs


@functools.cache
def _document() -> dict[str, Any]:
    schemas, refs = _schemas()
    # Route bodies refer to the generated names (pydantic may suffix a model used both ways).
    job_ref = refs["JobResource"]
    submit_ref = refs["SubmitRequest"]

    def content(name: str, root: str) -> dict[str, Any]:
        return _content(refs[name], root)

    def _errors(**descriptions: str) -> dict[str, Any]:
        """Error responses keyed by status: `_errors(e404="unknown job")` ("" = the default text)."""
        return {k[1:]: _error(refs["ErrorBody"], int(k[1:]), v or None) for k, v in descriptions.items()}

    def _job(description: str, *headers: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
        resp: dict[str, Any] = {"description": description, "content": _content(job_ref, "job")}
        if headers:
            resp["headers"] = _headers(*headers, required=required)
        return resp

    accepted = _job("Accepted: the job is queued. Poll `Location`, honouring `Retry-After`.",
                    "Location", "Retry-After", "Preference-Applied", "GW-Async-Location",
                    required=("Location",))
    finished_or_replayed = _job(
        "The job an earlier request with the same `runId` created (`Idempotent-Replayed: true`), "
        "or, with `Prefer: wait=N`, the job finished within N seconds.",
        "Location", "Idempotent-Replayed", "Preference-Applied", required=("Location",))
    submit_errors = dict(
        e400="Malformed body (`malformed_body`).", e401="", e404="Unknown service (`unknown_service`).",
        e409="Service disabled (`service_disabled`) or `runId` reused with a different request "
             "(`run_id_conflict`).",
        e413="Body over 4 MB.", e422="", e429="", e503="",
    )

    paths: dict[str, Any] = {
        "/v1/jobs": {
            "post": {
                "operationId": "submitJob", "tags": ["jobs"], "summary": "Submit a job",
                "description": "Validates everything (service, input against the service's model, "
                               "callback URL, sizes) before accepting. Only `service` is required. "
                               "The same tenant sending the same `runId` again gets the same job "
                               "back (200), never a second job.",
                "parameters": [_param("Prefer")],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": submit_ref},
                        XML: {"schema": {"allOf": [submit_ref], "xml": {"name": "job"}}},
                    },
                },
                "responses": {"200": finished_or_replayed, "202": accepted,
                              **_errors(**submit_errors, e415="Neither JSON nor XML.")},
            },
            "get": {
                "operationId": "listJobs", "tags": ["jobs"], "summary": "List jobs, newest first",
                "parameters": [_param("Status"), _param("ServiceFilter"), _param("Limit"),
                               _param("Cursor")],
                "responses": {
                    "200": {"description": "One page; `nextCursor` is null on the last one.",
                            "content": content("JobList", "jobs")},
                    **_errors(e400="Bad `status`, `limit` or `cursor` (`invalid_parameter`, "
                                   "`invalid_cursor`).", e401="", e503=""),
                },
            },
        },
        "/v1/services/{service}/jobs": {
            "post": {
                "operationId": "submitContent", "tags": ["jobs"],
                "summary": "Submit a job with a document",
                "description": "The raw body (any media type, up to 4 MB) becomes the service's "
                               "content variable; query parameters become variables, except the "
                               "reserved `runId`, `callbackUrl` and `logLevel`.",
                "parameters": [_param("ServiceName"), _param("RunId"), _param("CallbackUrl"),
                               _param("LogLevel"), _param("Variables"), _param("Prefer")],
                "requestBody": {
                    "required": False,
                    "description": "The document, in any media type.",
                    "content": {"*/*": {"schema": {}}},
                },
                "responses": {"200": copy.deepcopy(finished_or_replayed),
                              "202": copy.deepcopy(accepted), **_errors(**submit_errors)},
            },
        },
        "/v1/jobs/{jobId}": {
            "parameters": [_param("JobId")],
            "get": {
                "operationId": "getJob", "tags": ["jobs"], "summary": "Read a job",
                "responses": {
                    "200": _job("The job; `Retry-After` while it is not finished.", "Retry-After"),
                    **_errors(e401="", e404="Unknown job (or another tenant's, or expired).",
                              e503=""),
                },
            },
            "delete": {
                "operationId": "deleteJob", "tags": ["jobs"],
                "summary": "Delete a finished job with its result, log and deliveries",
                "responses": {
                    "204": {"description": "Deleted."},
                    **_errors(e401="", e404="Unknown job.",
                              e409="The job is not finished (`job_not_finished`).", e503=""),
                },
            },
        },
        "/v1/jobs/{jobId}/cancel": {
            "parameters": [_param("JobId")],
            "post": {
                "operationId": "cancelJob", "tags": ["jobs"], "summary": "Cancel a job",
                "responses": {
                    "200": _job("It was queued: canceled at once."),
                    "202": _job("It was running: canceled; its handler sees it and stops, and a late "
                                "result never overwrites `canceled`."),
                    **_errors(e401="", e404="Unknown job.",
                              e409="The job is already finished (`job_finished`).", e503=""),
                },
            },
        },
        "/v1/jobs/{jobId}/result": {
            "parameters": [_param("JobId")],
            "get": {
                "operationId": "getJobResult", "tags": ["jobs"], "summary": "Download the result",
                "description": "Redirects to a fresh presigned URL that never outlives `validUntil`. "
                               "Do not send the API credentials to it.",
                "responses": {
                    "303": _see_other("See Other: GET `Location` (no credentials) for the result."),
                    **_errors(e401="", e404="Unknown job, or it has no result (`no_result`).",
                              e410="The result expired (`result_expired`).", e503=""),
                },
            },
        },
        "/v1/results/{token}": {
            "parameters": [{"name": "token", "in": "path", "required": True,
                            "description": "The signed part of a job's `resultUrl`.",
                            "schema": {"type": "string"}}],
            "get": {
                "operationId": "followResultLink", "tags": ["jobs"], "security": [],
                "summary": "Download a result through its `resultUrl` (no credentials)",
                "description": "A job's `resultUrl` is this route with a token signed by the "
                               "deployment: whoever holds it may download that one result until "
                               "`validUntil`, nothing else. Redirects to a fresh presigned URL.",
                "responses": {
                    "303": _see_other("See Other: GET `Location` (no credentials) for the result."),
                    **_errors(e403="Not a valid link: malformed or tampered with (`invalid_link`).",
                              e404="The job or its result is gone (`not_found`).",
                              e410="Past `validUntil` (`result_expired`).", e503=""),
                },
            },
        },
        "/v1/jobs/{jobId}/log": {
            "parameters": [_param("JobId")],
            "get": {
                "operationId": "getJobLog", "tags": ["jobs"], "summary": "Read the job's log",
                "responses": {
                    "200": {"description": "The log at the job's `logLevel` (empty when none).",
                            "content": {TEXT: {"schema": {"type": "string"}}}},
                    "303": _see_other("A log over 1 MB: GET `Location` (no credentials)."),
                    **_errors(e401="", e404="Unknown job.", e503=""),
                },
            },
        },
        "/v1/jobs/{jobId}/deliveries": {
            "parameters": [_param("JobId")],
            "get": {
                "operationId": "listDeliveries", "tags": ["webhooks"],
                "summary": "Every webhook attempt, oldest first",
                "responses": {
                    "200": {"description": "The attempts.", "content": content("DeliveryList",
                                                                                "deliveries")},
                    **_errors(e401="", e404="Unknown job.", e503=""),
                },
            },
            "post": {
                "operationId": "redeliver", "tags": ["webhooks"], "summary": "Send the webhook again now",
                "responses": {
                    "202": _job("Accepted: the event is sent again (same `webhook-id`)."),
                    **_errors(e401="", e404="Unknown job.",
                              e409="The job has no `callbackUrl` (`no_callback`), is not finished "
                                   "(`job_not_finished`), or a delivery of its webhook is pending "
                                   "(`delivery_pending`).", e503=""),
                },
            },
        },
        "/v1/services": {
            "get": {
                "operationId": "listServices", "tags": ["services"],
                "summary": "The services (job types) and their input schemas",
                "responses": {
                    "200": {"description": "Every service.", "content": content("ServiceList",
                                                                                 "services")},
                    **_errors(e401="", e503=""),
                },
            },
        },
        "/v1/health": {
            "get": {
                "operationId": "health", "tags": ["meta"], "summary": "Liveness", "security": [],
                "responses": {"200": {"description": "Up.", "content": content("Health", "health")},
                              **_errors(e503="")},
            },
        },
        "/dashboard": {
            "get": {
                "operationId": "dashboard", "tags": ["meta"], "security": [],
                "summary": "A page to watch, submit and cancel jobs (it asks for the API key)",
                "responses": {"200": {"description": "The page.",
                                      "content": {"text/html": {"schema": {"type": "string"}}}},
                              **_errors(e503="")},
            },
        },
        "/favicon.ico": {
            "get": {
                "operationId": "favicon", "tags": ["meta"], "security": [],
                "summary": "No icon: 204, so a browser's own request for it logs no error",
                "responses": {"204": {"description": "No content."}, **_errors(e503="")},
            },
        },
        **_worker_paths(_errors),
        "/openapi.json": {
            "get": {
                "operationId": "openapi", "tags": ["meta"], "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1.",
                                      "content": {JSON: {"schema": {"type": "object"}}}}},
            },
        },
    }

    webhooks = {
        "job.finished": {
            "post": {
                "operationId": "jobFinished", "tags": ["webhooks"],
                "summary": "A job with a `callbackUrl` ended (succeeded, failed or canceled)",
                "description": "Signed per Standard Webhooks; any Standard Webhooks verifier accepts "
                               "it. A 2xx within 10 s is success; redirects are not followed; "
                               "otherwise retried after `interval × 2^(n-1)` (± 10 %), or every "
                               "`interval` for a tenant on the `fixed` schedule. At least once: "
                               "de-duplicate on `webhook-id`. Per tenant, the body may instead be "
                               "Shoptet's `{eshopId, event: job:finished, eventCreated, "
                               "eventInstance}` or, for a succeeded job, its result itself "
                               "(IBM BAW's outputs, ≤ 256 KB, the result's own media type).",
                "security": [],
                "parameters": [{"name": name, "in": "header", "required": True, "description": text,
                                "schema": {"type": "string"}} for name, text in _WEBHOOK_HEADERS],
                "requestBody": {"required": True,
                                "content": {JSON: {"schema": refs["WebhookEvent"]}}},
                "responses": {"2XX": {"description": "Received (any other answer is retried)."}},
            },
        },
    }

    # The webhook, as an OpenAPI callback of the routes that take a callbackUrl.
    event = {k: v for k, v in webhooks["job.finished"]["post"].items()
             if k not in ("operationId", "tags")}
    for path, expression in (("/v1/jobs", "{$request.body#/callbackUrl}"),
                             ("/v1/services/{service}/jobs", "{$request.query.callbackUrl}")):
        paths[path]["post"]["callbacks"] = {
            "jobFinished": {expression: {"post": copy.deepcopy(event)}}}
    paths.update(compat_openapi.paths(_errors, _see_other, _param("JobId")))

    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Jobgate", "version": API_VERSION, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}, {"basicAuth": []}],
        "tags": [
            {"name": "jobs", "description": "Submit, follow, cancel and collect jobs."},
            {"name": "services", "description": "The job types."},
            {"name": "webhooks", "description": "The `job.finished` event and its deliveries."},
            {"name": "meta", "description": "Health, this document and the dashboard page (no "
                                            "credentials)."},
            {"name": "workers", "description": "Worker processes claim jobs of `runsOn: worker` "
                                               "services (worker keys only)."},
            *compat_openapi.TAGS,
        ],
        "paths": paths,
        "webhooks": webhooks,
        "components": {
            "schemas": schemas,
            "parameters": _PARAMETERS,
            "headers": _HEADERS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "`Authorization: Bearer <api key>`."},
                "basicAuth": {"type": "http", "scheme": "basic",
                              "description": "`<tenant>:<api key>` (e.g. `curl --user dev:KEY`)."},
                "workerKey": {"type": "http", "scheme": "bearer",
                              "description": "`Authorization: Bearer jgw_...` (worker routes only)."},
                "shoptetToken": compat_openapi.SECURITY_SCHEME,
            },
        },
    }


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    return out


_TOKEN = {"type": "string", "description": "The claim's `leaseToken`."}
_LOG = {"type": "array", "items": {"type": "string"}, "maxItems": 200}
_WORKER_OPS = {
    "claim": ("claimJob", "Claim a job (long poll up to `waitSeconds`)", _obj({
        "services": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 20},
        "waitSeconds": {"type": "number", "minimum": 0, "maximum": 20}})),
    "heartbeat": ("heartbeatJob", "Extend the lease; report progress, variables, log lines", _obj({
        "leaseToken": _TOKEN,
        "progress": _obj({"percent": {"type": "number"}, "message": {"type": "string"}}),
        "variables": {"type": "object", "additionalProperties": True}, "log": _LOG},
        ("leaseToken",))),
    "complete": ("completeJob", "The result: inline JSON (≤ 256 KB) or uploaded to "
                                "`resultUploadUrl`", _obj({
        "leaseToken": _TOKEN, "result": {}, "resultUploaded": {"type": "boolean"},
        "resultType": {"type": "string"}, "log": _LOG}, ("leaseToken",))),
    "fail": ("failJob", "A failed attempt: retried unless attempts are exhausted or the code is "
                        "not retryable", _obj({
        "leaseToken": _TOKEN,
        "error": _obj({"code": {"type": "string", "maxLength": 64}, "message": {"type": "string"}}),
        "retryAfterSeconds": {"type": ["number", "null"], "minimum": 0, "maximum": 42_900,
                              "description": "Seconds (rounded up); null: the usual backoff."},
        "log": _LOG},
        ("leaseToken",))),
}
_WORKER_ANSWERS = {
    "claim": _obj({
        "jobId": {"type": "string"}, "tenant": {"type": "string"}, "service": {"type": "string"},
        "input": {}, "variables": {"type": "object"}, "logLevel": {"type": "integer"},
        "attempt": {"type": "integer"}, "maxAttempts": {"type": "integer"},
        "contentUrl": {"type": "string"}, "contentType": {"type": ["string", "null"]},
        "resultUploadUrl": {"type": "string"}, "leaseToken": {"type": "string"},
        "leaseExpiresAt": {"type": "string"}, "deadlineAt": {"type": "string"}},
        ("jobId", "tenant", "service", "attempt", "leaseToken", "leaseExpiresAt",
         "resultUploadUrl")),
    "heartbeat": _obj({"leaseExpiresAt": {"type": ["string", "null"]},
                       "canceled": {"type": "boolean"}, "resultUploadUrl": {"type": "string"}},
                      ("leaseExpiresAt", "canceled")),
    "complete": _obj({"jobId": {"type": "string"}, "status": {"type": "string"}}),
    "fail": _obj({"jobId": {"type": "string"}, "status": {"type": "string"},
                  "retryAt": {"type": "string"}}),
}


def _worker_paths(errors: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The worker routes (docs/api.md "Workers"): worker keys, not tenant keys."""
    out: dict[str, Any] = {}
    for name, (op_id, summary, request) in _WORKER_OPS.items():
        path = "/v1/worker/claim" if name == "claim" else f"/v1/worker/jobs/{{jobId}}/{name}"
        responses: dict[str, Any] = {"200": {"description": "Done.", "content": {
            JSON: {"schema": _WORKER_ANSWERS[name]}}}}
        if name == "claim":
            responses["204"] = {"description": "No job came within `waitSeconds`."}
            responses.update(errors(e400="", e401="", e404="Unknown worker service.", e503=""))
        else:
            responses.update(errors(
                e400="", e401="", e404="Unknown job, or a job of a service this key may not serve.",
                e409="`lease_lost` (the lease lapsed or was taken over) or `canceled`.",
                **({"e413": "Inline result over 256 KB."} if name == "complete" else {}),
                e503=""))
        op: dict[str, Any] = {
            "operationId": op_id, "tags": ["workers"], "summary": summary,
            "security": [{"workerKey": []}],
            "requestBody": {"required": name != "claim", "content": {JSON: {"schema": request}}},
            "responses": responses,
        }
        if name != "claim":
            op["parameters"] = [_param("JobId")]
        out[path] = {"post": op}
    return out
