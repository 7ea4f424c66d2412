"""The compatibility routes in the OpenAPI document, under their own tags (one per source
API). Their bodies are the source APIs' shapes, so their schemas are written here rather
than generated from our models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JSON, XML = "application/json", "application/xml"
NULLABLE_STRING = {"type": ["string", "null"]}
TAGS = [
    {"name": "compat: Apache Hop", "description": "Hop's asynchronous web service."},
    {"name": "compat: Guidewire", "description": "Guidewire Cloud API's Async API."},
    {"name": "compat: Shoptet", "description": "Shoptet's asynchronous requests."},
    {"name": "compat: Starfish", "description": "Starfish ETL's ExecuteJobAsync."},
]


def _q(name: str, required: bool, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": "string"}}


def _ok(schema: dict[str, Any], description: str, xml: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if xml:
        content[XML] = {"schema": {"type": "string"}}
    return {"description": description, "content": content}


def paths(errors: Callable[..., dict[str, Any]], see_other: Callable[[str], dict[str, Any]],
          job_id_param: dict[str, Any]) -> dict[str, Any]:
    hop_status = {"type": "object", "required": ["service", "id", "statusDescription"],
                  "properties": {
                      "service": {"type": "string"}, "id": {"type": "string"},
                      "startDate": NULLABLE_STRING, "endDate": NULLABLE_STRING,
                      "statusDescription": {"enum": ["Waiting", "Running", "Finished",
                                                     "Finished (with errors)", "Stopped"]},
                      "statusVariables": {"type": "object",
                                          "additionalProperties": NULLABLE_STRING}}}
    hop_run = {
        "tags": ["compat: Apache Hop"], "summary": "Start a run (Hop's asyncRun)",
        "description": "`service=NAME`; every other query parameter is a variable "
                       "(`runConfig` is ignored); the body, if any, is the content variable. "
                       "A trailing slash (`/hop/asyncRun/`) reaches the same route.",
        "parameters": [_q("service", True, "The service to run."),
                       {"name": "variables", "in": "query", "required": False, "style": "form",
                        "explode": True, "schema": {"type": "object",
                                                    "additionalProperties": {"type": "string"}}}],
        "responses": {
            "200": _ok({"type": "object", "required": ["name", "id"],
                        "properties": {"name": {"type": "string"}, "id": {"type": "string"}}},
                       "Compact JSON, `id` last: `{\"name\":\"<service>\",\"id\":\"<jobId>\"}`."),
            **errors(e400="", e401="", e404="", e409="", e413="", e422="", e429="", e503=""),
        },
    }
    hop_stat = {
        "tags": ["compat: Apache Hop"], "summary": "A run's status (Hop's asyncStatus)",
        "parameters": [_q("service", False, "The run's service."),
                       _q("id", True, "The run's id (the job ID)."),
                       _q("xml", False, "`Y`: answer XML."), _q("json", False, "`Y` (default).")],
        "responses": {"200": _ok(hop_status, "The run's status and status variables.", xml=True),
                      **errors(e400="", e401="", e404="", e503="")},
    }
    gw_id = {"name": "requestId", "in": "path", "required": True,
             "schema": {"type": "string"}, "description": "The job ID."}
    shoptet_job = {"type": "object", "properties": {
        "jobId": {"type": "string"}, "endpoint": {"type": "string"},
        "creationTime": {"type": "string"}, "completionTime": NULLABLE_STRING,
        "duration": NULLABLE_STRING, "resultUrl": NULLABLE_STRING,
        "validUntil": NULLABLE_STRING, "log": {"type": "string"},
        "status": {"enum": ["pending", "running", "completed", "failed", "canceled"]}}}
    shoptet_security: list[dict[str, list[str]]] = [
        {"shoptetToken": []}, {"bearerAuth": []}, {"basicAuth": []}]
    starfish_request = {"type": "object", "properties": {
        name: {"type": ["string", "integer", "boolean", "null"]}
        for name in ("runID", "projectID", "jobID", "chainJobs", "loggingLevel", "argument",
                     "beginAtRow", "endAfterRow", "threadCount", "webHookURL")}}
    return {
        "/hop/asyncRun": {"get": {**hop_run, "operationId": "hopAsyncRun"},
                          "post": {**hop_run, "operationId": "hopAsyncRunPost",
                                   "requestBody": {"required": False,
                                                   "content": {"*/*": {"schema": {}}}}}},
        "/hop/asyncStatus": {"get": {**hop_stat, "operationId": "hopAsyncStatus"},
                             "post": {**hop_stat, "operationId": "hopAsyncStatusPost"}},
        "/async/v1/requests/{requestId}": {"get": {
            "operationId": "gwAsyncRequest", "tags": ["compat: Guidewire"],
            "summary": "The status of an asynchronous call (`GW-Async-Location`)",
            "parameters": [gw_id],
            "responses": {"200": _ok({"type": "object", "required": ["id", "status"],
                                      "properties": {
                                          "id": {"type": "string"},
                                          "status": {"enum": ["Accepted", "In Progress",
                                                              "Complete", "Failed"]},
                                          "responseBodyJson": {}}},
                                     "Status; `responseBodyJson` once a small JSON result "
                                     "(or the error) is there."),
                          **errors(e401="", e404="", e503="")}}},
        "/async/v1/requests/{requestId}/response": {"get": {
            "operationId": "gwAsyncResponse", "tags": ["compat: Guidewire"],
            "summary": "The call's result", "parameters": [gw_id],
            "responses": {"200": _ok({}, "A JSON result up to 64 KB, itself."),
                          "303": see_other("Any other result: its presigned URL."),
                          **errors(e401="", e404="", e410="", e503="")}}},
        "/api/system/jobs": {"get": {
            "operationId": "shoptetJobs", "tags": ["compat: Shoptet"],
            "summary": "Jobs, newest first (Shoptet's jobs list)", "security": shoptet_security,
            "parameters": [_q("status", False, "Shoptet's status word."),
                           _q("limit", False, "1-100"), _q("cursor", False, "`nextCursor`.")],
            "responses": {"200": _ok({"type": "object", "properties": {"data": {
                "type": "object", "properties": {"jobs": {"type": "array", "items": shoptet_job},
                                                 "nextCursor": NULLABLE_STRING}}}},
                "`{\"data\": {\"jobs\": [...], \"nextCursor\"}}`."),
                **errors(e400="", e401="", e503="")}}},
        "/api/system/jobs/{jobId}": {"get": {
            "operationId": "shoptetJob", "tags": ["compat: Shoptet"],
            "summary": "Job detail (Shoptet's)", "security": shoptet_security,
            "parameters": [job_id_param],
            "responses": {"200": _ok({"type": "object", "properties": {"data": shoptet_job}},
                                     "`{\"data\": {...}}`, times with `±hh:mm` offsets."),
                          **errors(e401="", e404="", e503="")}}},
        "/v1/ExecuteJobAsync": {"post": {
            "operationId": "starfishExecuteJobAsync", "tags": ["compat: Starfish"],
            "summary": "Start a job (Starfish's execJobAsyncRequest)",
            "requestBody": {"required": True, "content": {
                JSON: {"schema": starfish_request}, "text/json": {"schema": starfish_request},
                XML: {"schema": {"type": "string"}}, "text/xml": {"schema": {"type": "string"}},
                "application/x-www-form-urlencoded": {"schema": starfish_request}}},
            "responses": {"200": _ok({"type": "object", "properties": {
                "runID": {"type": "string"}, "started": {"type": "boolean"},
                "error": NULLABLE_STRING}}, "`execJobAsyncResponse`.", xml=True),
                **errors(e400="", e401="", e404="", e409="", e413="", e415="", e422="",
                         e429="", e503="")}}},
    }


SECURITY_SCHEME = {"type": "apiKey", "in": "header", "name": "Shoptet-Access-Token",
                   "description": "An API key, on the Shoptet routes only."}
