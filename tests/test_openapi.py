"""The OpenAPI document: a valid OpenAPI 3.1, generated from the pydantic models, covering
every route of app.py and docs/api.md; and real answers (Chalice's test client on moto) match it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from chalicelib.openapi import document
from tests.conftest import body

BASE = "https://jobs.example.com/api"
ERROR_REF = "#/components/schemas/ErrorBody"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# docs/api.md's routes: the document must hold exactly these operations.
API_MD = {
    ("post", "/v1/jobs"), ("get", "/v1/jobs"), ("post", "/v1/services/{service}/jobs"),
    ("get", "/v1/jobs/{jobId}"), ("delete", "/v1/jobs/{jobId}"), ("post", "/v1/jobs/{jobId}/cancel"),
    ("get", "/v1/jobs/{jobId}/result"), ("get", "/v1/jobs/{jobId}/log"),
    ("get", "/v1/jobs/{jobId}/deliveries"), ("post", "/v1/jobs/{jobId}/deliveries"),
    ("get", "/v1/services"), ("get", "/v1/health"), ("get", "/openapi.json"), ("get", "/dashboard"),
    ("get", "/favicon.ico"), ("get", "/v1/results/{token}"),
    ("post", "/v1/worker/claim"), ("post", "/v1/worker/jobs/{jobId}/heartbeat"),
    ("post", "/v1/worker/jobs/{jobId}/complete"), ("post", "/v1/worker/jobs/{jobId}/fail"),
    # compatibility routes (docs/api.md "Compatibility routes")
    ("get", "/hop/asyncRun"), ("post", "/hop/asyncRun"), ("get", "/hop/asyncStatus"),
    ("post", "/hop/asyncStatus"), ("get", "/async/v1/requests/{requestId}"),
    ("get", "/async/v1/requests/{requestId}/response"), ("get", "/api/system/jobs"),
    ("get", "/api/system/jobs/{jobId}"), ("post", "/v1/ExecuteJobAsync"),
}
WORKER = {op for op in API_MD if "/v1/worker/" in op[1]}
PUBLIC = {("get", "/v1/health"), ("get", "/openapi.json"), ("get", "/dashboard"),
          ("get", "/favicon.ico"), ("get", "/v1/results/{token}")}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document(BASE)


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, item in doc["paths"].items()
            for method, op in item.items() if method in METHODS}


def test_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate

    assert doc["openapi"].startswith("3.1")
    validate(doc, cls=OpenAPIV31SpecValidator)
    json.dumps(doc)  # plain JSON, servable as is


def test_validation_would_catch_a_broken_document(doc: dict[str, Any]) -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
    from referencing.exceptions import Unresolvable

    broken = json.loads(json.dumps(doc))
    del broken["components"]["parameters"]["JobId"]["in"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken)
    dangling = json.loads(json.dumps(doc))
    dangling["components"]["schemas"].pop("Progress")  # JobResource refers to it
    with pytest.raises(Unresolvable):
        validate(dangling)


def test_every_app_route_is_documented(doc: dict[str, Any]) -> None:
    import app

    ops = operations(doc)
    for path, methods in app.app.routes.items():
        for method in methods:
            if (method, path) in app.FALLBACK_ROUTES:
                continue  # only answers 404/405 (tests/test_malformed.py)
            assert (method.lower(), path) in ops, f"{method} {path} is missing from /openapi.json"


def test_covers_api_md_exactly(doc: dict[str, Any]) -> None:
    assert set(operations(doc)) == API_MD
    ids = [op["operationId"] for op in operations(doc).values()]
    assert len(ids) == len(set(ids))


def test_servers_and_copies(doc: dict[str, Any]) -> None:
    assert doc["servers"][0]["url"] == BASE
    other = document("http://127.0.0.1:8000/")
    assert other["servers"][0]["url"] == "http://127.0.0.1:8000"
    other["paths"].clear()
    assert document(BASE)["paths"], "callers must get their own copy"


def test_security(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["basicAuth"] == {**schemes["basicAuth"], "type": "http", "scheme": "basic"}
    assert doc["security"] == [{"bearerAuth": []}, {"basicAuth": []}]
    for key, op in operations(doc).items():
        if key in PUBLIC:
            assert op["security"] == [], key
        elif key in WORKER:
            assert op["security"] == [{"workerKey": []}] and "401" in op["responses"], key
        elif key[1].startswith("/api/system/"):  # Shoptet's token, or the usual ones
            assert op["security"][1:] == doc["security"], key
            assert "401" in op["responses"], key
        else:
            assert "security" not in op, key  # the document-wide requirement applies
            assert "401" in op["responses"], key


def test_errors_and_headers(doc: dict[str, Any]) -> None:
    for key, op in operations(doc).items():
        for status, resp in op["responses"].items():
            if status.startswith(("4", "5")):
                content = resp["content"]
                assert content["application/json"]["schema"] == {"$ref": ERROR_REF}, (key, status)
                assert content["application/xml"]["schema"]["xml"] == {"name": "error"}
            if status in ("429", "503"):
                assert resp["headers"]["Retry-After"]["required"] is True, (key, status)
        if key != ("get", "/openapi.json"):
            assert "503" in op["responses"], key
    ops = operations(doc)
    submit = ops[("post", "/v1/jobs")]
    assert {"200", "202", "400", "401", "404", "409", "413", "415", "422", "429", "503"} <= \
        set(submit["responses"])
    assert set(submit["responses"]["202"]["headers"]) == {"Location", "Retry-After", "Preference-Applied",
                                                           "GW-Async-Location"}
    assert set(submit["responses"]["200"]["headers"]) >= {"Location", "Idempotent-Replayed",
                                                            "Preference-Applied"}
    assert {"$ref": "#/components/parameters/Prefer"} in submit["parameters"]
    assert set(submit["requestBody"]["content"]) == {"application/json", "application/xml"}
    assert "303" in ops[("get", "/v1/jobs/{jobId}/result")]["responses"]
    assert "410" in ops[("get", "/v1/jobs/{jobId}/result")]["responses"]
    log = ops[("get", "/v1/jobs/{jobId}/log")]["responses"]
    assert set(log["200"]["content"]) == {"text/plain"} and "303" in log
    assert set(ops[("post", "/v1/jobs/{jobId}/cancel")]["responses"]) >= {"200", "202", "409"}
    assert set(ops[("delete", "/v1/jobs/{jobId}")]["responses"]) >= {"204", "409"}
    names = {p["$ref"].rsplit("/", 1)[-1] for p in ops[("post", "/v1/services/{service}/jobs")]["parameters"]}
    assert names >= {"ServiceName", "RunId", "CallbackUrl", "LogLevel", "Variables", "Prefer"}
    params = doc["components"]["parameters"]
    assert [params[n]["name"] for n in ("RunId", "CallbackUrl", "LogLevel")] == \
        ["runId", "callbackUrl", "logLevel"]
    listing = {p["$ref"].rsplit("/", 1)[-1] for p in ops[("get", "/v1/jobs")]["parameters"]}
    assert listing == {"Status", "ServiceFilter", "Limit", "Cursor"}


def test_schemas_are_generated_from_the_models(doc: dict[str, Any]) -> None:
    from chalicelib import models
    from chalicelib.openapi_models import WebhookEvent

    schemas = doc["components"]["schemas"]
    ref = "#/components/schemas/{model}"
    for model, mode in [(models.SubmitRequest, "validation"), (models.JobResource, "serialization"),
                        (models.JobList, "serialization"), (models.ErrorBody, "serialization"),
                        (models.ServiceList, "serialization"), (models.DeliveryList, "serialization"),
                        (models.Health, "serialization"), (WebhookEvent, "serialization")]:
        generated = model.model_json_schema(mode=mode, by_alias=True, ref_template=ref)
        generated.pop("$defs", None)
        assert schemas[model.__name__] == generated, model.__name__
    job = schemas["JobResource"]
    assert {"jobId", "status", "createdAt", "expiresAt", "log"} <= set(job["required"])
    assert job["properties"]["status"]["enum"] == ["queued", "running", "succeeded", "failed", "canceled"]
    assert "input" not in job["properties"]  # never echoed


def _jobs() -> list[Any]:
    """Jobs that between them set and leave out every field of the resource."""
    from chalicelib.jobs import Job

    t = 1_767_225_600.0
    bare = Job(tenant="acme", job_id="01ARZ3NDEKTSV4RRFFQ69G5FAV", service="echo",
               status="queued", created_at=t, expires_at=t + 86_400)
    return [
        bare,
        Job(**{**bare.__dict__, "status": "queued", "attempts": 1, "max_attempts": 5,
               "error_code": "handler_error", "error_message": "boom", "available_at": t + 4,
               "progress_percent": 42, "status_vars": {"STEP": "2", "UNDECLARED": "x"},
               "run_id": "run-1", "callback_url": "https://hooks.example.com/h"}),
        Job(**{**bare.__dict__, "status": "succeeded", "attempts": 2, "started_at": t + 1,
               "completed_at": t + 3.25, "progress_percent": 100.0, "progress_message": "done",
               "result_key": "r/key", "result_type": "application/json", "result_size": 1234,
               "valid_until": t + 86_400, "previous": "01ARZ3NDEKTSV4RRFFQ69G5FA0",
               "next": "01ARZ3NDEKTSV4RRFFQ69G5FA1", "callback_url": "https://hooks.example.com/h",
               "callback_state": "failed", "callback_attempts": 3, "callback_last_at": t + 9,
               "callback_last_error": "HTTP 500"}),
        Job(**{**bare.__dict__, "status": "failed", "error_code": "invalid_input",
               "error_message": None, "result_type": "text/plain", "result_size": 9,
               "callback_url": "https://hooks.example.com/h", "callback_state": "delivered",
               "callback_last_error": ""}),
    ]


@pytest.mark.parametrize("case", range(4))
def test_the_job_resource_is_exactly_what_its_model_dumps(case: int) -> None:
    """The polling path renders the resource without pydantic (chalicelib/jobs.py); the
    model it is documented by (models.JobResource) must accept it and dump the same JSON,
    field for field and in the same order."""
    from chalicelib.jobs import to_resource
    from chalicelib.models import JobResource

    rendered = to_resource(_jobs()[case], job_url="https://x/v1/jobs/J", status_variables=["STEP"],
                           result_url="https://x/v1/results/t" if case == 2 else None).dump()
    dumped = JobResource.model_validate(rendered).dump()
    assert list(dumped.items()) == list(rendered.items())
    assert json.dumps(dumped) == json.dumps(rendered)  # 42 → 42.0 alike, no null anywhere


def test_the_resource_fields_are_all_rendered_by_some_job() -> None:
    """The cases above reach every field of the model (so a new field is covered)."""
    from chalicelib.jobs import to_resource
    from chalicelib.models import JobResource

    seen: set[str] = set()
    for case, job in enumerate(_jobs()):
        body_ = to_resource(job, job_url="https://x/v1/jobs/J", status_variables=["STEP"],
                            result_url="https://x/v1/results/t" if case == 2 else None).dump()
        seen |= set(body_)
        for nested in ("progress", "error", "callback"):
            seen |= {f"{nested}.{k}" for k in body_.get(nested, {})}
    fields = {f.alias or name for name, f in JobResource.model_fields.items()}
    assert fields <= seen
    assert {"progress.message", "callback.lastAttemptAt", "callback.lastError"} <= seen


def test_cold_start_builds_no_model() -> None:
    """`import app` (every function's cold start) imports no pydantic model machinery, no
    API model, no OpenAPI and no XML codec: the routes that need them import them."""
    heavy = ["pydantic.main", "chalicelib.models", "chalicelib.openapi",
             "chalicelib.openapi_models", "xml.sax", "chalicelib.worker", "chalicelib.workers",
             "chalicelib.admin", "chalicelib.callbacks", "chalicelib.compat.hop",
             "chalicelib.compat.starfish", "chalicelib.compat.shoptet"]
    code = f"import sys, app; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_webhook_event(doc: dict[str, Any]) -> None:
    hook = doc["webhooks"]["job.finished"]["post"]
    assert hook["requestBody"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/WebhookEvent"}
    assert {p["name"] for p in hook["parameters"]} == {"webhook-id", "webhook-timestamp",
                                                        "webhook-signature"}
    event = doc["components"]["schemas"]["WebhookEvent"]
    assert event["properties"]["type"]["const"] == "job.finished"
    assert event["properties"]["data"] == {"$ref": "#/components/schemas/JobResource"}


def test_import_is_light() -> None:
    """Only the /openapi.json route imports it: importing must not build anything."""
    code = ("import sys, chalicelib.openapi as o; "
            "print(o._document.cache_info().currsize, 'chalicelib.models' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"]


# -- real answers match the document ---------------------------------------------------------

def conflict(data: Any, resp: Any) -> bool:
    """The answer was the documented 409 with our error body."""
    assert resp.status_code == 409, (resp.status_code, resp.body)
    return bool(data["error"]["code"])


class Contract:
    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self.ops = operations(doc)

    def check(self, method: str, path: str, resp: Any) -> Any:
        from openapi_schema_validator import OAS31Validator

        status = str(resp.status_code)
        headers = {k.lower(): v for k, v in resp.headers.items()}
        responses = self.ops[(method, path)]["responses"]
        assert status in responses, f"{method.upper()} {path} answered undocumented {status}"
        spec = responses[status]
        for name, header in spec.get("headers", {}).items():
            if header.get("required"):
                assert name.lower() in headers, f"{status} lacks {name}"
        content = spec.get("content", {})
        media = (headers.get("content-type") or "").split(";")[0].strip()
        if not content:
            return None
        assert media in content, f"{media!r} is not documented for {status}"
        if media != "application/json":
            return resp.body
        data = body(resp)
        schema = {**content[media]["schema"], "components": self.doc["components"]}
        OAS31Validator(schema).validate(data)
        return data


def test_answers_match_the_document(env: Any, http: Any, doc: dict[str, Any]) -> None:
    c = Contract(doc)
    job = c.check("post", "/v1/jobs", http.post("/v1/jobs", {"service": "echo", "input": {"a": 1},
                                                             "runId": "contract-1"}))
    job_id = job["jobId"]
    assert job["status"] == "queued"
    replay = http.post("/v1/jobs", {"service": "echo", "input": {"a": 1}, "runId": "contract-1"})
    assert c.check("post", "/v1/jobs", replay)["jobId"] == job_id and replay.status_code == 200
    reused = http.post("/v1/jobs", {"service": "echo", "input": {"a": 2}, "runId": "contract-1"})
    assert conflict(c.check("post", "/v1/jobs", reused), reused)
    c.check("get", "/v1/jobs/{jobId}", http.get(f"/v1/jobs/{job_id}"))
    early = http.delete(f"/v1/jobs/{job_id}")  # not finished
    assert conflict(c.check("delete", "/v1/jobs/{jobId}", early), early)
    env.run_queue()
    done = c.check("get", "/v1/jobs/{jobId}", http.get(f"/v1/jobs/{job_id}"))
    assert done["status"] == "succeeded"
    c.check("get", "/v1/jobs", http.get("/v1/jobs?limit=1"))
    c.check("get", "/v1/jobs/{jobId}/result", http.get(f"/v1/jobs/{job_id}/result"))
    c.check("get", "/v1/jobs/{jobId}/log", http.get(f"/v1/jobs/{job_id}/log"))
    c.check("get", "/v1/jobs/{jobId}/deliveries", http.get(f"/v1/jobs/{job_id}/deliveries"))
    redeliver = http.post(f"/v1/jobs/{job_id}/deliveries")  # the job has no webhook
    assert conflict(c.check("post", "/v1/jobs/{jobId}/deliveries", redeliver), redeliver)
    late = http.post(f"/v1/jobs/{job_id}/cancel")  # already succeeded
    assert conflict(c.check("post", "/v1/jobs/{jobId}/cancel", late), late)
    gone = http.delete(f"/v1/jobs/{job_id}")
    c.check("delete", "/v1/jobs/{jobId}", gone)
    assert gone.status_code == 204

    queued = c.check("post", "/v1/jobs", http.post("/v1/jobs", {"service": "sleep"}))
    c.check("post", "/v1/jobs/{jobId}/cancel", http.post(f"/v1/jobs/{queued['jobId']}/cancel"))

    doc_job = http.request("POST", "/v1/services/echo/jobs?A=1&logLevel=2", body=b"raw",
                           headers={"Content-Type": "text/plain"})
    c.check("post", "/v1/services/{service}/jobs", doc_job)

    c.check("get", "/v1/services", http.get("/v1/services"))
    c.check("get", "/v1/health", http.get("/v1/health", key=None))
    c.check("get", "/dashboard", http.get("/dashboard", key=None))
    errors = [
        ("get", "/v1/jobs/{jobId}", http.get("/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")),  # 404
        ("get", "/v1/jobs/{jobId}", http.get(f"/v1/jobs/{job_id}", key="wrong")),  # 401
        ("get", "/v1/jobs", http.get("/v1/jobs?limit=0")),  # 400
        ("get", "/v1/jobs", http.get("/v1/jobs?cursor=nonsense")),  # 400
        ("post", "/v1/jobs", http.post("/v1/jobs", {"service": "sleep", "input": {"seconds": -1}})),
        ("post", "/v1/jobs", http.post("/v1/jobs", {"service": "nope"})),  # 404
        ("post", "/v1/jobs", http.request("POST", "/v1/jobs", body=b"{", headers={
            "Content-Type": "application/json"})),  # 400
        ("post", "/v1/jobs", http.request("POST", "/v1/jobs", body=b"x", headers={
            "Content-Type": "text/plain"})),  # 415
        ("get", "/v1/jobs/{jobId}/result", http.get("/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/result")),
    ]
    statuses = set()
    for method, path, resp in errors:
        data = c.check(method, path, resp)
        assert data["error"]["code"], data
        statuses.add(resp.status_code)
    assert statuses == {400, 401, 404, 415, 422}


def test_xml_answers_are_documented(env: Any, http: Any, doc: dict[str, Any]) -> None:
    c = Contract(doc)
    xml = {"Accept": "application/xml"}
    resp = http.post("/v1/jobs", {"service": "echo"}, headers=xml)
    assert resp.status_code == 202 and c.check("post", "/v1/jobs", resp).startswith(b"<?xml")
    c.check("get", "/v1/jobs/{jobId}", http.get("/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=xml))
    c.check("get", "/v1/services", http.get("/v1/services", headers=xml))


def test_submit_routes_describe_the_webhook_as_a_callback(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    body_cb = ops[("post", "/v1/jobs")]["callbacks"]["jobFinished"]
    assert list(body_cb) == ["{$request.body#/callbackUrl}"]
    assert "webhook-signature" in [p["name"] for p in body_cb[
        "{$request.body#/callbackUrl}"]["post"]["parameters"]]
    query_cb = ops[("post", "/v1/services/{service}/jobs")]["callbacks"]["jobFinished"]
    assert list(query_cb) == ["{$request.query.callbackUrl}"]


def test_compat_routes_are_tagged_apart(doc: dict[str, Any]) -> None:
    compat_tags = {t["name"] for t in doc["tags"] if t["name"].startswith("compat: ")}
    assert len(compat_tags) == 4
    for (method, path), op in operations(doc).items():
        is_compat = path.startswith(("/hop/", "/async/", "/api/system/")) or \
            path == "/v1/ExecuteJobAsync"
        assert (set(op["tags"]) <= compat_tags) == is_compat, (method, path)
