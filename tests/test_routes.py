"""The job lifecycle routes through the real Chalice app on moto: submit, read, list, result,
log, cancel, delete, services, XML, and every error answer of docs/api.md that applies, with its
error body. Time is moved by replacing the API's clock; the worker runs via env.run_queue()."""

from __future__ import annotations

import base64
import json
import math
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.conftest import KEY_A, KEY_B, body

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)

TENANT = "acme"
HOST = "jobs.example.com"
UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"  # a well-formed ULID nobody created
DAY = 86_400


# -- helpers -------------------------------------------------------------------------------

def submit(http: Any, service: str = "echo", data: Any = None, key: str = KEY_A,
           **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"service": service, **extra}
    if data is not None:
        payload["input"] = data
    resp = http.post("/v1/jobs", payload, key=key)
    assert resp.status_code == 202, resp.body
    return body(resp)


def finished(env: Any, http: Any, service: str = "echo", data: Any = None,
             **extra: Any) -> dict[str, Any]:
    """Submit, run the worker, and return the job resource (asserting it ended)."""
    job_id = submit(http, service, data, **extra)["jobId"]
    env.run_queue()
    resp = http.get(f"/v1/jobs/{job_id}")
    assert resp.status_code == 200, resp.body
    job = body(resp)
    assert job["status"] in ("succeeded", "failed"), job
    return job


def record(env: Any, job_id: str) -> Any:
    job = env.rt.store.get(TENANT, job_id, 0)
    assert job is not None
    return job


def error_of(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert docs/api.md's error shape and return the inner error object."""
    assert resp.status_code == status, (resp.status_code, resp.body)
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    data = body(resp)
    assert set(data) == {"error"}, data
    err = data["error"]
    assert {"code", "message", "details"} <= set(err), err
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], list)
    if code is not None:
        assert err["code"] == code, err
    return err


def detail_locs(err: dict[str, Any]) -> list[list[Any]]:
    return [d["loc"] for d in err["details"]]


@dataclass
class Clock:
    """A settable clock installed wherever the request path reads the time."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


def install_clock(env: Any, clock: Clock) -> None:
    env.rt.api.clock = clock
    env.rt.api.view.clock = clock  # the resource's resultUrl is minted there


def expires_param(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])


def each(cases: Any, check: Any) -> None:
    """Run `check` on every case in one environment; report every failing case at once."""
    failures = []
    for case in cases:
        try:
            check(*case) if isinstance(case, tuple) else check(case)
        except AssertionError as exc:
            failures.append(f"{case!r:.120}: {exc!s:.300}")
    assert not failures, "\n".join(failures)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- submit --------------------------------------------------------------------------------

def test_submit_answers_202_with_absolute_location_and_retry_after(env, http):
    resp = http.post("/v1/jobs", {"service": "echo", "input": {"secret": "s3cr3t"}})
    assert resp.status_code == 202, resp.body
    job = body(resp)
    job_id = job["jobId"]
    assert len(job_id) == 26
    assert job["status"] == "queued" and job["service"] == "echo" and job["attempts"] == 0
    assert resp.headers["Location"] == f"https://{HOST}/v1/jobs/{job_id}"
    assert int(resp.headers["Retry-After"]) >= 0
    assert job["log"] == f"https://{HOST}/v1/jobs/{job_id}/log"
    assert "createdAt" in job and "expiresAt" in job
    assert "input" not in job and "s3cr3t" not in resp.body.decode()  # input is never echoed


def test_location_is_built_from_the_host_the_client_used(env, http):
    resp = http.post("/v1/jobs", {"service": "echo"}, headers={"Host": "api.other.test:8443"})
    assert resp.status_code == 202
    assert resp.headers["Location"] == f"https://api.other.test:8443/v1/jobs/{body(resp)['jobId']}"
    local = http.post("/v1/jobs", {"service": "echo"}, headers={"Host": "localhost:8000"})
    assert local.headers["Location"] == f"http://localhost:8000/v1/jobs/{body(local)['jobId']}"
    proxied = http.post("/v1/jobs", {"service": "echo"},
                        headers={"Host": "internal:9000", "X-Forwarded-Host": "public.example",
                                 "X-Forwarded-Proto": "https"})
    # forwarding headers count only behind a trusted proxy (tests/test_malformed.py)
    assert proxied.headers["Location"].startswith("https://internal:9000/v1/jobs/")


@dataclass
class FakeRequest:
    headers: dict[str, str]
    path: str
    context: dict[str, Any]
    uri_params: dict[str, str] | None = None


@pytest.mark.parametrize("route,full_path,params,expected", [
    ("/v1/jobs", "/api/v1/jobs", None, "https://abc.execute-api.us-east-1.amazonaws.com/api"),
    ("/v1/jobs/{jobId}/cancel", f"/api/v1/jobs/{UNKNOWN_ID}/cancel", {"jobId": UNKNOWN_ID},
     "https://abc.execute-api.us-east-1.amazonaws.com/api"),
    ("/v1/jobs/{jobId}", f"/prod/v1/jobs/{UNKNOWN_ID}", {"jobId": UNKNOWN_ID},
     "https://abc.execute-api.us-east-1.amazonaws.com/prod"),
    ("/v1/jobs", "/v1/jobs", None, "https://abc.execute-api.us-east-1.amazonaws.com"),
])
def test_base_url_keeps_the_api_gateway_stage_prefix(route, full_path, params, expected):
    from chalicelib.httpio import base_url

    request = FakeRequest({"host": "abc.execute-api.us-east-1.amazonaws.com"}, route,
                          {"path": full_path}, params)
    assert base_url(request) == expected


def _apigw_event(method: str, resource: str, path: str, stage: str, body_text: str | None = None,
                 path_params: dict[str, str] | None = None) -> dict[str, Any]:
    headers = {"Host": "abc.execute-api.us-east-1.amazonaws.com", "Authorization": f"Bearer {KEY_A}",
               "Content-Type": "application/json"}
    return {
        "resource": resource, "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": path_params, "stageVariables": None,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "stage": stage,
                           "path": f"/{stage}{path}"},
        "body": body_text, "isBase64Encoded": False,
    }


def test_location_and_links_keep_the_stage_prefix_behind_api_gateway(env, http):
    """The real app invoked with an API Gateway proxy event whose path carries `/api`."""
    import app as app_module

    out = app_module.app(_apigw_event("POST", "/v1/jobs", "/v1/jobs", "api",
                                      json.dumps({"service": "echo"})), None)
    assert out["statusCode"] == 202, out
    job_id = json.loads(out["body"])["jobId"]
    base = "https://abc.execute-api.us-east-1.amazonaws.com/api"
    assert out["headers"]["Location"] == f"{base}/v1/jobs/{job_id}"
    got = app_module.app(_apigw_event("GET", "/v1/jobs/{jobId}", f"/v1/jobs/{job_id}", "api",
                                      path_params={"jobId": job_id}), None)
    assert got["statusCode"] == 200, got
    assert json.loads(got["body"])["log"] == f"{base}/v1/jobs/{job_id}/log"


def test_get_job_reads_back_the_submitted_job_with_retry_after_until_it_ends(env, http):
    job = submit(http, "sleep", {"seconds": 0, "steps": 2}, logLevel=2)
    resp = http.get(f"/v1/jobs/{job['jobId']}")
    assert resp.status_code == 200
    got = body(resp)
    assert got["jobId"] == job["jobId"] and got["status"] == "queued"
    assert int(resp.headers["Retry-After"]) >= 0
    env.run_queue()
    resp = http.get(f"/v1/jobs/{job['jobId']}")
    done = body(resp)
    assert done["status"] == "succeeded", done
    assert "Retry-After" not in resp.headers
    assert done["attempts"] == 1 and done["variables"] == {"STEP": "2"}
    assert done["progress"]["percent"] == 100.0
    assert done["resultType"] == "application/json" and done["resultSize"] > 0
    assert done["startedAt"] <= done["completedAt"] and done["duration"] >= 0
    assert done["validUntil"] and done["resultUrl"].startswith("https://")


def test_run_id_replay_returns_the_same_job_and_a_different_request_is_409(env, http):
    first = http.post("/v1/jobs", {"service": "echo", "input": {"a": 1}, "runId": "run-1"})
    assert first.status_code == 202
    again = http.post("/v1/jobs", {"service": "echo", "input": {"a": 1}, "runId": "run-1"})
    assert again.status_code == 200, again.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert body(again)["jobId"] == body(first)["jobId"]
    other = http.post("/v1/jobs", {"service": "echo", "input": {"a": 2}, "runId": "run-1"})
    error_of(other, 409, "run_id_conflict")
    listed = body(http.get("/v1/jobs"))["jobs"]
    assert [j["jobId"] for j in listed] == [body(first)["jobId"]]


def test_queue_full_answers_503_with_retry_after_and_creates_no_job(env, http):
    env.settings(max_queue_depth=2)
    waiting = [submit(http)["jobId"] for _ in range(2)]
    resp = http.post("/v1/jobs", {"service": "echo"})
    error_of(resp, 503)
    assert int(resp.headers["Retry-After"]) > 0
    assert {j["jobId"] for j in body(http.get("/v1/jobs"))["jobs"]} == set(waiting)


def test_tenant_over_its_quota_answers_429_with_retry_after(env, http):
    env.settings(tenant_max_active=2)
    submit(http)
    submit(http)
    resp = http.post("/v1/jobs", {"service": "echo"})
    error_of(resp, 429)
    assert int(resp.headers["Retry-After"]) > 0
    assert len(body(http.get("/v1/jobs"))["jobs"]) == 2
    assert http.post("/v1/jobs", {"service": "echo"}, key=KEY_B).status_code == 202  # per tenant


# -- errors: 400 / 401 / 404 / 409 / 410 / 413 / 415 / 422 -------------------------------

def test_malformed_or_non_object_json_body_is_400(env, http):
    def check(raw: bytes) -> None:
        resp = http.request("POST", "/v1/jobs", body=raw, headers={"Content-Type": "application/json"})
        error_of(resp, 400, "malformed_body")

    each([b"{not json", b'{"service": "echo",}', b"[1, 2]", b'"echo"', b"42", b"null", b"",
          b"\xff\xfe{}"], check)
    assert body(http.get("/v1/jobs"))["jobs"] == []


BAD_CREDENTIALS = [
    None,
    "Bearer wrong-key",
    "Bearer",
    "Bearer ",
    "Token " + KEY_A,
    basic("bobco", KEY_A),      # a real key, but not bobco's
    basic("acme", "wrong-key"),
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"no-colon-here").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "Basic " + base64.b64encode(b":" + KEY_A.encode()).decode(),
    KEY_A,
]


def test_missing_or_bad_credentials_are_401(env, http):
    def check(authorization: str | None) -> None:
        headers = {} if authorization is None else {"Authorization": authorization}
        resp = http.get("/v1/jobs", key=None, headers=headers)
        error_of(resp, 401, "unauthorized")
        assert "WWW-Authenticate" in resp.headers

    each(BAD_CREDENTIALS, check)


def test_bearer_and_basic_with_the_right_tenant_are_accepted(env, http):
    assert http.get("/v1/jobs", key=None, headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 200
    assert http.get("/v1/jobs", key=None, headers={"Authorization": basic("acme", KEY_A)}).status_code == 200
    assert http.get("/v1/jobs", key=None, headers={"Authorization": basic("bobco", KEY_B)}).status_code == 200


def test_every_route_requires_credentials(env, http):
    job_id = submit(http)["jobId"]  # a real job: auth comes before the lookup
    routes = [("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/services"),
              ("POST", "/v1/services/echo/jobs"), ("POST", "/v1/services/nope/jobs")] + [
        (m, f"/v1/jobs/{j}{s}") for j in (UNKNOWN_ID, job_id) for m, s in JOB_ROUTES]
    each(routes, lambda method, path: error_of(http.request(method, path, key=None), 401, "unauthorized"))
    each(routes, lambda method, path: error_of(http.request(method, path, key="nope"), 401, "unauthorized"))
    assert body(http.get(f"/v1/jobs/{job_id}"))["status"] == "queued"


def test_health_needs_no_credentials(env, http):
    resp = http.get("/v1/health", key=None)
    assert resp.status_code == 200 and body(resp) == {"status": "ok"}


JOB_ROUTES = [("GET", ""), ("DELETE", ""), ("POST", "/cancel"), ("GET", "/result"), ("GET", "/log"),
              ("GET", "/deliveries"), ("POST", "/deliveries")]


def test_unknown_job_is_404(env, http):
    each(JOB_ROUTES, lambda method, suffix: error_of(
        http.request(method, f"/v1/jobs/{UNKNOWN_ID}{suffix}"), 404, "not_found"))


def test_another_tenants_job_is_404_exactly_like_an_unknown_one(env, http):
    done = finished(env, http)["jobId"]  # a finished one too: DELETE and result would succeed
    # and one whose webhook failed: its owner may ask for a redelivery (POST /deliveries)
    hooked = finished(env, http, callbackUrl="http://127.0.0.1:9/h")["jobId"]
    env.rt.clients.sqs.purge_queue(QueueUrl=env.queues["callbacks"])
    env.rt.store.set_callback_state(TENANT, hooked, "failed", "pending", error="HTTP 500")
    queued = submit(http)["jobId"]

    def check(method: str, suffix: str, job_id: str) -> None:
        theirs = http.request(method, f"/v1/jobs/{job_id}{suffix}", key=KEY_B)
        unknown = http.request(method, f"/v1/jobs/{UNKNOWN_ID}{suffix}", key=KEY_B)
        assert error_of(theirs, 404) == error_of(unknown, 404)

    each([(m, s, j) for m, s in JOB_ROUTES for j in (queued, done, hooked)], check)
    # and nothing happened to acme's jobs
    assert body(http.get(f"/v1/jobs/{queued}"))["status"] == "queued"
    assert body(http.get(f"/v1/jobs/{done}"))["status"] == "succeeded"
    assert http.get(f"/v1/jobs/{done}/result").status_code == 303
    assert body(http.get(f"/v1/jobs/{hooked}"))["callback"]["state"] == "failed"
    assert env.messages("callbacks") == []  # no redelivery was queued for bobco
    assert http.post(f"/v1/jobs/{hooked}/deliveries").status_code == 202  # the owner can


def test_a_document_submit_never_replays_another_tenants_run(env, http):
    mine = http.request("POST", "/v1/services/echo/jobs?runId=r-shared", body=b"acme's",
                        headers={"Content-Type": "text/plain"})
    theirs = http.request("POST", "/v1/services/echo/jobs?runId=r-shared", body=b"acme's",
                          headers={"Content-Type": "text/plain"}, key=KEY_B)
    assert mine.status_code == theirs.status_code == 202, (mine.body, theirs.body)
    assert body(mine)["jobId"] != body(theirs)["jobId"]
    error_of(http.get(f"/v1/jobs/{body(mine)['jobId']}", key=KEY_B), 404, "not_found")


def test_another_tenants_jobs_are_not_listed(env, http):
    submit(http)
    submit(http, "sleep", {"seconds": 0})
    assert body(http.get("/v1/jobs", key=KEY_B)) == {"jobs": [], "nextCursor": None}
    assert body(http.get("/v1/jobs?service=echo", key=KEY_B))["jobs"] == []
    assert body(http.get("/v1/jobs?status=queued", key=KEY_B))["jobs"] == []
    mine = submit(http, key=KEY_B)["jobId"]
    assert [j["jobId"] for j in body(http.get("/v1/jobs", key=KEY_B))["jobs"]] == [mine]


def test_unknown_service_is_404(env, http):
    err = error_of(http.post("/v1/jobs", {"service": "nope"}), 404, "unknown_service")
    assert "nope" in err["message"]
    error_of(http.post("/v1/jobs", {"service": "echo", "chain": [{"service": "nope"}]}), 404,
             "unknown_service")


def test_disabled_service_is_409_and_others_still_work(env, http):
    env.settings(disabled_services=frozenset({"echo"}))
    error_of(http.post("/v1/jobs", {"service": "echo"}), 409, "service_disabled")
    error_of(http.post("/v1/jobs", {"service": "sleep", "chain": [{"service": "echo"}]}), 409,
             "service_disabled")
    assert http.post("/v1/jobs", {"service": "sleep", "input": {"seconds": 0}}).status_code == 202
    services = {s["name"]: s for s in body(http.get("/v1/services"))["services"]}
    assert services["echo"]["enabled"] is False and services["sleep"]["enabled"] is True


def test_delete_of_a_queued_job_is_409_and_keeps_it(env, http):
    job_id = submit(http)["jobId"]
    error_of(http.delete(f"/v1/jobs/{job_id}"), 409, "job_not_finished")
    assert body(http.get(f"/v1/jobs/{job_id}"))["status"] == "queued"


def test_cancel_of_a_finished_job_is_409_and_keeps_its_status(env, http):
    job = finished(env, http)
    error_of(http.post(f"/v1/jobs/{job['jobId']}/cancel"), 409, "job_finished")
    assert body(http.get(f"/v1/jobs/{job['jobId']}"))["status"] == "succeeded"
    assert http.get(f"/v1/jobs/{job['jobId']}/result").status_code == 303


def test_result_after_valid_until_is_410_and_the_resource_drops_result_url(env, http):
    job_id = finished(env, http, data={"x": 1})["jobId"]
    valid_until = record(env, job_id).valid_until
    clock = Clock(valid_until - 1)
    install_clock(env, clock)
    assert http.get(f"/v1/jobs/{job_id}/result").status_code == 303
    assert "resultUrl" in body(http.get(f"/v1/jobs/{job_id}"))
    clock.now = valid_until
    error_of(http.get(f"/v1/jobs/{job_id}/result"), 410, "result_expired")
    clock.now = valid_until + DAY
    error_of(http.get(f"/v1/jobs/{job_id}/result"), 410, "result_expired")
    job = body(http.get(f"/v1/jobs/{job_id}"))
    assert job["status"] == "succeeded" and "resultUrl" not in job


def test_body_over_4_mb_is_413(env, http):
    pad = "x" * (4 * 1024 * 1024)
    raw = json.dumps({"service": "echo", "input": {"pad": pad}}).encode()
    assert len(raw) > 4 * 1024 * 1024
    error_of(http.request("POST", "/v1/jobs", body=raw, headers={"Content-Type": "application/json"}),
             413, "payload_too_large")
    assert body(http.get("/v1/jobs"))["jobs"] == []


def test_unsupported_content_type_is_415(env, http):
    each(["text/plain", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
          "image/png", "application/jsonx"],
         lambda ct: error_of(http.request("POST", "/v1/jobs", body=json.dumps({"service": "echo"}),
                                          headers={"Content-Type": ct}), 415, "unsupported_media_type"))
    assert body(http.get("/v1/jobs"))["jobs"] == []


def test_json_with_parameters_and_plus_json_are_accepted(env, http):
    for ct in ("application/json; charset=utf-8", "application/vnd.jobgate+json"):
        resp = http.request("POST", "/v1/jobs", body=json.dumps({"service": "echo"}),
                            headers={"Content-Type": ct})
        assert resp.status_code == 202, (ct, resp.body)


INVALID_REQUESTS = [
    ({"service": "sleep", "input": {"seconds": -1}}, ["input", "seconds"]),
    ({"service": "sleep", "input": {"seconds": 601}}, ["input", "seconds"]),
    ({"service": "sleep", "input": {"steps": 0}}, ["input", "steps"]),
    ({"service": "sleep", "input": {"seconds": "soon"}}, ["input", "seconds"]),
    ({"service": "sleep", "input": {"bogus": 1}}, ["input", "bogus"]),
    ({"service": "echo", "chain": [{"service": "sleep", "input": {"seconds": -1}}]},
     ["chain[0].input", "seconds"]),
    ({"service": "echo", "bogus": 1}, ["bogus"]),
    ({}, ["service"]),
    ({"service": ""}, ["service"]),
    ({"service": "echo", "input": [1, 2]}, ["input"]),
    ({"service": "echo", "logLevel": 4}, ["logLevel"]),
    ({"service": "echo", "logLevel": -1}, ["logLevel"]),
    ({"service": "echo", "logLevel": "high"}, ["logLevel"]),
    ({"service": "echo", "runId": "r" * 37}, ["runId"]),
    ({"service": "echo", "runId": "has space"}, ["runId"]),
    ({"service": "echo", "variables": {"A": [1]}}, ["variables", "A"]),
    ({"service": "echo", "variables": {"A": "v" * 4097}}, ["variables"]),
    ({"service": "echo", "callbackUrl": "ftp://example.com/x"}, ["callbackUrl"]),
]


def test_invalid_request_is_422_with_field_details(env, http):
    def check(payload: dict[str, Any], loc: list[str]) -> None:
        err = error_of(http.post("/v1/jobs", payload), 422, "validation_error")
        assert loc in detail_locs(err), err
        for d in err["details"]:
            assert isinstance(d["msg"], str) and d["msg"]
            assert "input" not in d  # the rejected value is never echoed back

    each(INVALID_REQUESTS, check)
    assert body(http.get("/v1/jobs"))["jobs"] == []


def test_run_id_of_36_chars_is_accepted(env, http):
    job = submit(http, runId="r" * 36)
    assert job["runId"] == "r" * 36


# -- no input produces a 5xx ---------------------------------------------------------------

J = "application/json"
X = "application/xml"
STORABLE_BUG = ("BUG: input that DynamoDB cannot store (NaN/Infinity, >38-digit numbers, lone "
                "surrogates, empty map keys, >400 KB item) escapes store.create as TypeError/Inexact/"
                "UnicodeEncodeError/ValidationException and is answered 503")
DEPTH_BUG = "BUG: deeply nested JSON raises RecursionError in parse_submit_body and is answered 503"


def _odd(id_: str, method: str, path: str, raw: bytes | str | None = None, ctype: str | None = J,
         bug: str | None = None) -> Any:
    return (id_, method, path, raw, ctype, bug)


ODD_INPUTS = [
    _odd("huge-int-seconds", "POST", "/v1/jobs", '{"service":"sleep","input":{"seconds":' + "9" * 400 + "}}"),
    _odd("huge-float-seconds", "POST", "/v1/jobs", '{"service":"sleep","input":{"seconds":1e999}}'),
    _odd("nan-seconds", "POST", "/v1/jobs", '{"service":"sleep","input":{"seconds":NaN}}'),
    _odd("huge-loglevel", "POST", "/v1/jobs", '{"service":"echo","logLevel":' + "9" * 5000 + "}"),
    _odd("float-loglevel", "POST", "/v1/jobs", '{"service":"echo","logLevel":1.5}'),
    _odd("nested-junk-service", "POST", "/v1/jobs", '{"service":{"a":[1,{"b":null}]}}'),
    _odd("list-variables", "POST", "/v1/jobs", '{"service":"echo","variables":[[[]]]}'),
    _odd("chain-not-list", "POST", "/v1/jobs", '{"service":"echo","chain":{"service":"echo"}}'),
    _odd("chain-of-junk", "POST", "/v1/jobs", '{"service":"echo","chain":[1,"x",null,[]]}'),
    _odd("chain-too-long", "POST", "/v1/jobs", json.dumps(
        {"service": "echo", "chain": [{"service": "echo"}] * 11})),
    _odd("too-many-variables", "POST", "/v1/jobs", json.dumps(
        {"service": "echo", "variables": {f"V{i}": "x" for i in range(101)}})),
    _odd("unicode-service", "POST", "/v1/jobs", '{"service":"\u00e9cho\u2603\U0001f600"}'),
    _odd("nul-in-service", "POST", "/v1/jobs", '{"service":"echo\\u0000"}'),
    _odd("long-service", "POST", "/v1/jobs", json.dumps({"service": "e" * 10_000})),
    _odd("unicode-run-id", "POST", "/v1/jobs", '{"service":"echo","runId":"\u00e9\u2603"}'),
    _odd("callback-garbage", "POST", "/v1/jobs", '{"service":"echo","callbackUrl":"http://[::1"}'),
    _odd("callback-not-a-string", "POST", "/v1/jobs", '{"service":"echo","callbackUrl":{"a":1}}'),
    _odd("binary-body", "POST", "/v1/jobs", bytes(range(256))),
    _odd("nul-body", "POST", "/v1/jobs", b"\x00" * 100),
    _odd("duplicate-keys", "POST", "/v1/jobs", '{"service":"echo","service":{}}'),
    _odd("xml-garbage", "POST", "/v1/jobs", b"<job><service>echo</job>", X),
    _odd("xml-wrong-root", "POST", "/v1/jobs", b"<task><service>echo</service></task>", X),
    _odd("xml-entities", "POST", "/v1/jobs",
         b'<?xml version="1.0"?><!DOCTYPE j [<!ENTITY a "aaaa">]><job><service>&a;</service></job>', X),
    _odd("xml-external-entity", "POST", "/v1/jobs",
         b'<?xml version="1.0"?><!DOCTYPE j [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
         b"<job><service>&e;</service></job>", X),
    _odd("xml-binary", "POST", "/v1/jobs", b"\xff\xfe\x00<", X),
    _odd("xml-bad-loglevel", "POST", "/v1/jobs",
         b"<job><service>echo</service><logLevel>9" + b"9" * 5000 + b"</logLevel></job>", X),
    _odd("xml-step-junk", "POST", "/v1/jobs",
         b"<job><service>echo</service><chain><step><x><y/></x></step></chain></job>", X),
    _odd("json-nan-in-echo-input", "POST", "/v1/jobs", '{"service":"echo","input":{"x":NaN}}',
         bug=STORABLE_BUG),
    _odd("json-infinity-in-echo-input", "POST", "/v1/jobs", '{"service":"echo","input":{"x":1e999}}',
         bug=STORABLE_BUG),
    _odd("json-40-digit-number-in-echo-input", "POST", "/v1/jobs",
         '{"service":"echo","input":{"x":' + "9" * 40 + "}}", bug=STORABLE_BUG),
    _odd("json-lone-surrogate-in-echo-input", "POST", "/v1/jobs",
         '{"service":"echo","input":{"x":"\\ud800"}}', bug=STORABLE_BUG),
    _odd("json-nan-in-chain-input", "POST", "/v1/jobs",
         '{"service":"echo","chain":[{"service":"echo","input":{"x":NaN}}]}', bug=STORABLE_BUG),
    _odd("xml-nan-in-echo-input", "POST", "/v1/jobs",
         b"<job><service>echo</service><input><x>nan</x></input></job>", X, bug=STORABLE_BUG),
    _odd("json-empty-map-key-in-echo-input", "POST", "/v1/jobs", '{"service":"echo","input":{"":1}}',
         bug=STORABLE_BUG),
    _odd("json-600kb-echo-input", "POST", "/v1/jobs",
         json.dumps({"service": "echo", "input": {"x": "a" * 600_000}}), bug=STORABLE_BUG),
    _odd("json-deeply-nested-input", "POST", "/v1/jobs",
         '{"service":"echo","input":{"x":' + "[" * 100_000 + "]" * 100_000 + "}}", bug=DEPTH_BUG),
    _odd("nul-in-job-id", "GET", "/v1/jobs/%00"),
    _odd("nul-inside-job-id", "GET", "/v1/jobs/01ARZ3NDEKTSV4RR%00FQ69G5FA"),
    _odd("percent-junk-job-id", "GET", "/v1/jobs/%ZZ%"),
    _odd("unicode-job-id", "GET", "/v1/jobs/" + "\u00e9" * 26),
    _odd("lowercase-job-id", "GET", "/v1/jobs/" + UNKNOWN_ID.lower()),
    _odd("very-long-job-id", "GET", "/v1/jobs/" + "A" * 5000),
    _odd("nul-job-id-cancel", "POST", "/v1/jobs/%00/cancel", None, None),
    _odd("nul-job-id-delete", "DELETE", "/v1/jobs/%00", None, None),
    _odd("nul-job-id-result", "GET", "/v1/jobs/%00/result"),
    _odd("nul-job-id-log", "GET", "/v1/jobs/%00/log"),
    _odd("cursor-junk", "GET", "/v1/jobs?cursor=%%%"),
    _odd("cursor-unicode", "GET", "/v1/jobs?cursor=%C3%A9%E2%98%83"),
    _odd("cursor-nul", "GET", "/v1/jobs?cursor=%00"),
    _odd("cursor-long", "GET", "/v1/jobs?cursor=" + "A" * 10_000),
    _odd("cursor-valid-base64-garbage", "GET", "/v1/jobs?cursor="
         + base64.urlsafe_b64encode(b"x" * 16 + b'["a","b"]').decode().rstrip("=")),
    _odd("limit-0", "GET", "/v1/jobs?limit=0"),
    _odd("limit-101", "GET", "/v1/jobs?limit=101"),
    _odd("limit-abc", "GET", "/v1/jobs?limit=abc"),
    _odd("limit-negative", "GET", "/v1/jobs?limit=-5"),
    _odd("limit-float", "GET", "/v1/jobs?limit=2.5"),
    _odd("limit-huge", "GET", "/v1/jobs?limit=" + "9" * 5000),
    _odd("status-bogus", "GET", "/v1/jobs?status=bogus"),
    _odd("status-unicode", "GET", "/v1/jobs?status=%E2%98%83"),
]


def _check_odd(http: Any, method: str, path: str, raw: Any, ctype: str | None) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    resp = http.request(method, path, body=raw, headers=headers)
    assert resp.status_code < 500, (resp.status_code, resp.body[:300])
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.body[:300])
    error_of(resp, resp.status_code)


def test_odd_input_is_a_4xx_with_an_error_body_never_a_5xx(env, http):
    each([case for case in ODD_INPUTS if not case[5]],
         lambda id_, method, path, raw, ctype, bug: _check_odd(http, method, path, raw, ctype))
    assert body(http.get("/v1/jobs"))["jobs"] == []  # none of them created a job


@pytest.mark.parametrize("method,path,raw,ctype", [
    pytest.param(*case[1:5], id=case[0])
    for case in ODD_INPUTS if case[5]])
def test_odd_input_that_dynamodb_cannot_hold_is_a_4xx_not_a_5xx(env, http, method, path, raw, ctype):
    _check_odd(http, method, path, raw, ctype)


def test_odd_but_harmless_list_queries_answer_a_valid_page(env, http):
    submit(http)

    def check(path: str, count: int) -> None:
        resp = http.get(path)
        assert resp.status_code == 200, resp.body
        assert set(body(resp)) == {"jobs", "nextCursor"} and len(body(resp)["jobs"]) == count

    each([("/v1/jobs?service=", 1), ("/v1/jobs?status=", 1),
          ("/v1/jobs?limit=1&limit=2", 1), ("/v1/jobs?unknown=1", 1)], check)
    # unknown filters are refused (tests/test_tenant_isolation.py)
    for query in ("service=%00", "service=" + "x" * 5000, "service=a%23b%23c",
                  "service=echo%23queued"):
        error_of(http.get(f"/v1/jobs?{query}"), 400, "invalid_parameter")


def test_odd_but_valid_echo_input_is_stored_and_echoed_byte_for_byte(env, http):
    data = {"\u00e9\u2603\U0001f600": "\u0000nul\u0000", "nested": [[[{"a": [None, True, 1.5]}]]],
            "big": 10 ** 30, "neg": -0.0001}
    job = finished(env, http, data=data)
    assert job["status"] == "succeeded"
    stored = env.rt.blobs.get(record(env, job["jobId"]).result_key)
    assert json.loads(stored) == data


# -- listing -------------------------------------------------------------------------------

def _submit_spaced(env: Any, http: Any, n: int, start: float, step: float = 1.0,
                   service: str = "echo") -> list[str]:
    clock = Clock(start)
    install_clock(env, clock)
    ids = []
    for i in range(n):
        clock.now = start + i * step
        ids.append(submit(http, service, {"seconds": 0} if service == "sleep" else None)["jobId"])
    return ids


def _walk(http: Any, query: str, key: str = KEY_A) -> list[list[str]]:
    pages, cursor = [], None
    for _ in range(100):
        path = f"/v1/jobs?{query}" + (f"&cursor={cursor}" if cursor else "")
        resp = http.get(path, key=key)
        assert resp.status_code == 200, resp.body
        data = body(resp)
        pages.append([j["jobId"] for j in data["jobs"]])
        cursor = data["nextCursor"]
        if cursor is None:
            return pages
    raise AssertionError("paging never ended")


def test_list_is_newest_first_with_limit_and_default_page(env, http):
    ids = _submit_spaced(env, http, 5, time.time())
    data = body(http.get("/v1/jobs"))
    assert [j["jobId"] for j in data["jobs"]] == ids[::-1]
    assert data["nextCursor"] is None
    two = body(http.get("/v1/jobs?limit=2"))
    assert [j["jobId"] for j in two["jobs"]] == ids[::-1][:2] and two["nextCursor"]
    assert all(j["log"].startswith(f"https://{HOST}/v1/jobs/") for j in data["jobs"])


def test_default_limit_is_20(env, http):
    ids = _submit_spaced(env, http, 21, time.time())
    data = body(http.get("/v1/jobs"))
    assert [j["jobId"] for j in data["jobs"]] == ids[::-1][:20]
    assert data["nextCursor"]


@pytest.mark.parametrize("limit", [1, 3, 7, 100])
def test_paging_visits_every_job_exactly_once(env, http, limit):
    ids = _submit_spaced(env, http, 7, time.time())
    pages = _walk(http, f"limit={limit}")
    seen = [j for page in pages for j in page]
    assert seen == ids[::-1]
    assert all(len(p) == limit for p in pages[:-1]) and 1 <= len(pages[-1]) <= limit
    assert len(pages) == math.ceil(7 / limit)


def test_a_cursor_is_a_position_not_an_offset(env, http):
    """Jobs submitted, deleted and canceled between two pages shift every offset; the next
    page still starts right after the last job seen, with nothing repeated or skipped."""
    t0 = time.time()
    ids = _submit_spaced(env, http, 6, t0)  # newest first: ids[5] .. ids[0]
    first = body(http.get("/v1/jobs?limit=3"))
    assert [j["jobId"] for j in first["jobs"]] == [ids[5], ids[4], ids[3]]
    newer = _submit_spaced(env, http, 2, t0 + 100)  # two more at the head of the list
    assert http.post(f"/v1/jobs/{ids[4]}/cancel").status_code == 200  # one seen, one unseen
    assert http.post(f"/v1/jobs/{ids[1]}/cancel").status_code == 200
    assert http.post(f"/v1/jobs/{ids[5]}/cancel").status_code == 200
    assert http.delete(f"/v1/jobs/{ids[5]}").status_code == 204  # a seen job is gone
    rest = body(http.get(f"/v1/jobs?limit=3&cursor={first['nextCursor']}"))
    assert [j["jobId"] for j in rest["jobs"]] == [ids[2], ids[1], ids[0]]
    assert rest["nextCursor"] is None or body(http.get(
        f"/v1/jobs?limit=3&cursor={rest['nextCursor']}"))["jobs"] == []
    assert _walk(http, "limit=100") == [[newer[1], newer[0], ids[4], ids[3], ids[2], ids[1],
                                        ids[0]]]


def test_filters_by_status_and_service_with_paging(env, http):
    t0 = time.time()
    echo = _submit_spaced(env, http, 4, t0)
    sleep = _submit_spaced(env, http, 3, t0 + 10, service="sleep")
    canceled = [echo[0], echo[2], sleep[1]]
    for job_id in canceled:
        assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    flat = lambda pages: [j for p in pages for j in p]  # noqa: E731
    assert flat(_walk(http, "service=echo&limit=1")) == echo[::-1]
    assert flat(_walk(http, "service=sleep&limit=2")) == sleep[::-1]
    assert flat(_walk(http, "status=canceled&limit=2")) == [sleep[1], echo[2], echo[0]]
    assert flat(_walk(http, "status=queued&limit=2")) == [sleep[2], sleep[0], echo[3], echo[1]]
    assert flat(_walk(http, "status=canceled&service=echo&limit=5")) == [echo[2], echo[0]]
    assert flat(_walk(http, "status=succeeded")) == []
    listed = body(http.get("/v1/jobs?status=canceled"))["jobs"]
    assert {j["status"] for j in listed} == {"canceled"}


def test_status_filter_follows_state_changes_made_by_the_worker(env, http):
    ids = _submit_spaced(env, http, 3, time.time())
    env.run_queue()
    pages = _walk(http, "status=succeeded&limit=2")
    assert [j for p in pages for j in p] == ids[::-1]
    assert _walk(http, "status=queued") == [[]]


def test_tampered_cursor_is_400(env, http):
    _submit_spaced(env, http, 3, time.time())
    cursor = body(http.get("/v1/jobs?limit=1"))["nextCursor"]
    assert http.get(f"/v1/jobs?limit=1&cursor={cursor}").status_code == 200
    mid = len(cursor) // 2
    tampered = cursor[:mid] + ("A" if cursor[mid] != "A" else "B") + cursor[mid + 1:]
    error_of(http.get(f"/v1/jobs?limit=1&cursor={tampered}"), 400, "invalid_cursor")
    error_of(http.get(f"/v1/jobs?limit=1&cursor={cursor[:-3]}"), 400, "invalid_cursor")
    error_of(http.get(f"/v1/jobs?limit=1&cursor={cursor}xyz"), 400, "invalid_cursor")


def test_a_cursor_cannot_be_reused_with_another_filter_or_tenant(env, http):
    _submit_spaced(env, http, 3, time.time())
    plain = body(http.get("/v1/jobs?limit=1"))["nextCursor"]
    echo = body(http.get("/v1/jobs?limit=1&service=echo"))["nextCursor"]
    queued = body(http.get("/v1/jobs?limit=1&status=queued"))["nextCursor"]
    assert plain and echo and queued
    error_of(http.get(f"/v1/jobs?limit=1&service=echo&cursor={plain}"), 400, "invalid_cursor")
    error_of(http.get(f"/v1/jobs?limit=1&cursor={echo}"), 400, "invalid_cursor")
    error_of(http.get(f"/v1/jobs?limit=1&service=sleep&cursor={echo}"), 400, "invalid_cursor")
    error_of(http.get(f"/v1/jobs?limit=1&status=canceled&cursor={queued}"), 400, "invalid_cursor")
    # a cursor is bound to its tenant
    error_of(http.get(f"/v1/jobs?limit=1&cursor={plain}", key=KEY_B), 400, "invalid_cursor")


def test_expired_jobs_are_not_listed_and_answer_404(env, http):
    t0 = time.time()
    old = _submit_spaced(env, http, 2, t0)
    new = _submit_spaced(env, http, 2, t0 + 10 * DAY)
    clock = Clock(t0 + 30 * DAY + 3600)  # past the old jobs' 30-day retention, TTL not yet run
    install_clock(env, clock)
    assert [j["jobId"] for j in body(http.get("/v1/jobs"))["jobs"]] == new[::-1]
    assert [j["jobId"] for j in body(http.get("/v1/jobs?status=queued"))["jobs"]] == new[::-1]
    assert [j["jobId"] for j in body(http.get("/v1/jobs?service=echo"))["jobs"]] == new[::-1]
    for job_id in old:
        for method, suffix in (("GET", ""), ("GET", "/log"), ("GET", "/result"),
                               ("POST", "/cancel"), ("DELETE", "")):
            error_of(http.request(method, f"/v1/jobs/{job_id}{suffix}"), 404, "not_found")
    assert body(http.get(f"/v1/jobs/{new[0]}"))["status"] == "queued"
    clock.now = t0 + 30 * DAY - 1  # just before: the old ones are still there
    assert len(body(http.get("/v1/jobs"))["jobs"]) == 4


def test_paging_skips_expired_jobs_but_still_visits_every_live_one(env, http):
    t0 = time.time()
    ids = []
    for i in range(6):
        env.settings(job_ttl_seconds=100 if i in (2, 5) else 30 * DAY)
        ids += _submit_spaced(env, http, 1, t0 + i)
    install_clock(env, Clock(t0 + 1000))
    live = [j for i, j in enumerate(ids) if i not in (2, 5)][::-1]
    for limit in (1, 2, 3):
        pages = _walk(http, f"limit={limit}")
        assert [j for p in pages for j in p] == live, limit


# -- result --------------------------------------------------------------------------------

@pytest.mark.moto  # downloads the presigned URL from moto's S3
def test_result_is_303_to_a_presigned_url_that_serves_the_result(env, http):
    import requests

    job_id = finished(env, http, data={"hello": "world"})["jobId"]
    resp = http.get(f"/v1/jobs/{job_id}/result")
    assert resp.status_code == 303 and resp.body in (b"", "")
    url = resp.headers["Location"]
    key = record(env, job_id).result_key
    parts = urlsplit(url)
    assert parts.scheme == "https" and unquote(parts.path).endswith(key)
    query = parse_qs(parts.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and "X-Amz-Signature" in query
    download = requests.get(url, timeout=10)
    assert download.status_code == 200 and json.loads(download.content) == {"hello": "world"}


@pytest.mark.parametrize("seconds_left", [5000.0, 3600.0, 100.0, 99.9, 2.5, 1.0])
def test_presigned_url_never_outlives_valid_until(env, http, seconds_left):
    job_id = finished(env, http)["jobId"]
    valid_until = record(env, job_id).valid_until
    install_clock(env, Clock(valid_until - seconds_left))
    url = http.get(f"/v1/jobs/{job_id}/result").headers["Location"]
    assert 1 <= expires_param(url) <= seconds_left
    link = body(http.get(f"/v1/jobs/{job_id}"))["resultUrl"]  # our link, then a presigned URL
    followed = http.get(urlsplit(link).path, key=None).headers["Location"]
    assert 1 <= expires_param(followed) <= seconds_left


def test_presigned_url_is_not_minted_in_the_last_second(env, http):
    job_id = finished(env, http)["jobId"]
    valid_until = record(env, job_id).valid_until
    install_clock(env, Clock(valid_until - 0.5))
    resp = http.get(f"/v1/jobs/{job_id}/result")
    assert resp.status_code == 410 or expires_param(resp.headers["Location"]) <= 0.5


def test_result_of_a_queued_or_failed_job_is_404_no_result(env, http):
    env.settings(job_max_attempts=1)
    failed = finished(env, http, "sleep", {"seconds": 0, "steps": 1, "fail": True})
    queued = submit(http)["jobId"]
    error_of(http.get(f"/v1/jobs/{queued}/result"), 404, "no_result")
    assert failed["status"] == "failed" and failed["error"]["code"] == "handler_error"
    assert "resultUrl" not in failed
    error_of(http.get(f"/v1/jobs/{failed['jobId']}/result"), 404, "no_result")
    assert body(http.get(f"/v1/jobs/{queued}"))["status"] == "queued"


# -- log -----------------------------------------------------------------------------------

def _log(http: Any, job_id: str) -> str:
    resp = http.get(f"/v1/jobs/{job_id}/log")
    assert resp.status_code == 200, resp.body
    assert resp.headers["Content-Type"].startswith("text/plain")
    return resp.body.decode() if isinstance(resp.body, bytes) else resp.body


def test_log_respects_the_log_level(env, http):
    sleep = {"seconds": 0, "steps": 3}
    quiet = finished(env, http, "sleep", sleep, logLevel=0)["jobId"]
    low = finished(env, http, "sleep", sleep)["jobId"]
    high = finished(env, http, "sleep", sleep, logLevel=3)["jobId"]
    assert _log(http, quiet) == ""
    low_text, high_text = _log(http, low), _log(http, high)
    assert "sleeping" in low_text and "step 1 done" not in low_text
    for i in (1, 2, 3):
        assert f"step {i} done" in high_text
    assert "sleeping" in high_text
    assert len(high_text.splitlines()) > len(low_text.splitlines())


def test_log_of_a_queued_job_is_empty_text(env, http):
    assert _log(http, submit(http, logLevel=3)["jobId"]) == ""


def test_a_log_over_the_inline_limit_is_kept_in_s3_and_still_served(env, http):
    job_id = finished(env, http, "sleep", {"seconds": 0, "steps": 1000}, logLevel=3)["jobId"]
    rec = record(env, job_id)
    assert rec.log_key and not rec.log_inline
    assert rec.log_size > env.rt.settings.inline_log_limit
    text = _log(http, job_id)
    assert len(text.encode()) == rec.log_size
    lines = [ln for ln in text.splitlines() if ln.endswith(" done") and " step " in ln]
    assert len(lines) == 1000 and lines[-1].endswith("step 1000 done")


MIB = 1024 * 1024


@pytest.fixture
def padded_log() -> Any:
    """A service whose log is exactly `input.size` bytes: the handler pads its own lines,
    knowing the worker's last line ("succeeded") comes after them and the stored log opens
    with the attempt's header (the first of one attempt)."""
    from chalicelib import services
    from chalicelib.services import Service

    def handler(data: Any, ctx: Any) -> Any:
        prefix = len(ctx.lines[0].split("] ", 1)[0]) + 2  # "<stamp> [low] "
        last = prefix + len("succeeded") + 1 + len("--- attempt 1 of 1 ---\n")

        def size() -> int:
            return sum(len(line) + 1 for line in ctx.lines)

        while size() + (prefix + 1000 + 1) + (prefix + 1 + 1) + last <= data["size"]:
            ctx.log("x" * 1000)
        ctx.log("y" * (data["size"] - size() - prefix - 1 - last))
        return {}

    services.get("echo")
    services.register(Service(name="padded-log", handler=handler, description="test",
                              max_attempts=1))
    yield
    services.unregister("padded-log")


@pytest.mark.parametrize("size", [MIB, MIB + 1])
def test_a_log_over_1_mb_answers_303_to_a_presigned_url(env, http, padded_log, size):
    """At 1 MiB the log is served; one byte more and the answer is a 303 to S3."""
    job_id = finished(env, http, "padded-log", {"size": size})["jobId"]
    rec = record(env, job_id)
    assert rec.log_size == size and rec.log_key
    resp = http.get(f"/v1/jobs/{job_id}/log")
    if size == MIB:
        text = _log(http, job_id)
        assert len(text.encode()) == MIB and text.rstrip("\n").endswith("] succeeded")
        return
    assert resp.status_code == 303
    url = resp.headers["Location"]
    assert unquote(urlsplit(url).path).endswith(rec.log_key)
    assert 1 <= expires_param(url) <= env.rt.settings.presign_max_seconds
    assert len(env.rt.blobs.get(rec.log_key)) == MIB + 1  # what the URL serves


# -- delete --------------------------------------------------------------------------------

def test_delete_of_a_finished_job_removes_it_and_its_s3_objects(env, http):
    job_id = finished(env, http, "sleep", {"seconds": 0, "steps": 1000}, logLevel=3)["jobId"]
    rec = record(env, job_id)
    assert env.rt.blobs.get(rec.result_key) is not None and env.rt.blobs.get(rec.log_key) is not None
    resp = http.delete(f"/v1/jobs/{job_id}")
    assert resp.status_code == 204 and resp.body in (b"", "")
    error_of(http.get(f"/v1/jobs/{job_id}"), 404, "not_found")
    error_of(http.delete(f"/v1/jobs/{job_id}"), 404, "not_found")
    error_of(http.get(f"/v1/jobs/{job_id}/result"), 404, "not_found")
    assert env.rt.blobs.get(rec.result_key) is None
    assert env.rt.blobs.get(rec.log_key) is None
    assert env.rt.store.get(TENANT, job_id, 0) is None
    assert job_id not in [j["jobId"] for j in body(http.get("/v1/jobs"))["jobs"]]


def test_delete_of_a_canceled_and_of_a_failed_job(env, http):
    canceled = submit(http)["jobId"]
    assert http.post(f"/v1/jobs/{canceled}/cancel").status_code == 200
    assert http.delete(f"/v1/jobs/{canceled}").status_code == 204
    env.settings(job_max_attempts=1)
    failed = finished(env, http, "sleep", {"seconds": 0, "steps": 1, "fail": True})["jobId"]
    assert http.delete(f"/v1/jobs/{failed}").status_code == 204
    assert body(http.get("/v1/jobs"))["jobs"] == []


# -- cancel --------------------------------------------------------------------------------

def test_cancel_of_a_queued_job_is_200_and_the_worker_never_starts_it(env, http):
    job_id = submit(http, "sleep", {"seconds": 0, "steps": 2})["jobId"]
    resp = http.post(f"/v1/jobs/{job_id}/cancel")
    assert resp.status_code == 200, resp.body
    job = body(resp)
    assert job["jobId"] == job_id and job["status"] == "canceled" and job["completedAt"]
    assert env.run_queue() == 1  # the message is consumed ...
    after = body(http.get(f"/v1/jobs/{job_id}"))
    assert after["status"] == "canceled"  # ... and nothing ran
    assert after["attempts"] == 0 and "startedAt" not in after and "resultUrl" not in after
    rec = record(env, job_id)
    assert rec.result_key is None and rec.started_at is None and rec.lease_token is None
    error_of(http.post(f"/v1/jobs/{job_id}/cancel"), 409, "job_finished")


def test_cancel_of_a_running_job_is_202_and_a_late_result_cannot_overwrite_it(env, http):
    from chalicelib.store import Conflict

    job_id = submit(http, "sleep", {"seconds": 0})["jobId"]
    now = time.time()
    env.rt.store.claim(TENANT, job_id, "worker-token", 600, now)  # a worker holds it
    assert body(http.get(f"/v1/jobs/{job_id}"))["status"] == "running"
    resp = http.post(f"/v1/jobs/{job_id}/cancel")
    assert resp.status_code == 202, resp.body
    assert body(resp)["status"] == "canceled"
    with pytest.raises(Conflict):
        env.rt.store.finish(TENANT, job_id, "worker-token", "succeeded", {"resultKey": "late"}, now + 1)
    rec = record(env, job_id)
    assert rec.status == "canceled" and rec.result_key is None
    assert body(http.get(f"/v1/jobs/{job_id}"))["status"] == "canceled"


# -- services ------------------------------------------------------------------------------

def test_services_list_describes_echo_and_sleep(env, http):
    resp = http.get("/v1/services")
    assert resp.status_code == 200
    services = {s["name"]: s for s in body(resp)["services"]}
    assert {"echo", "sleep"} <= set(services)
    for s in services.values():
        assert s["enabled"] is True
        assert isinstance(s["inputSchema"], dict) and s["inputSchema"].get("type") == "object"
        assert isinstance(s["description"], str) and s["description"]
        assert s["timeoutSeconds"] > 0 and s["resultTtlSeconds"] > 0
    assert services["sleep"]["statusVariables"] == ["STEP"]
    assert services["echo"]["statusVariables"] == []
    props = services["sleep"]["inputSchema"]["properties"]
    assert {"seconds", "steps", "fail", "result"} <= set(props)
    assert props["seconds"].get("maximum") == 600 and props["seconds"].get("minimum") == 0


# -- XML -----------------------------------------------------------------------------------

XML_ACCEPT = {"Accept": "application/xml"}


def test_get_job_as_xml(env, http):
    job_id = submit(http, "sleep", {"seconds": 0})["jobId"]
    resp = http.get(f"/v1/jobs/{job_id}", headers=XML_ACCEPT)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(resp.body)
    assert root.tag == "job"
    assert root.findtext("jobId") == job_id
    assert root.findtext("status") == "queued" and root.findtext("service") == "sleep"
    assert root.findtext("log") == f"https://{HOST}/v1/jobs/{job_id}/log"


def test_list_and_errors_as_xml(env, http):
    ids = _submit_spaced(env, http, 2, time.time())
    root = ET.fromstring(http.get("/v1/jobs", headers=XML_ACCEPT).body)
    assert root.tag == "jobs"
    assert [j.findtext("jobId") for j in root.iter("job")] == ids[::-1]
    resp = http.get(f"/v1/jobs/{UNKNOWN_ID}", headers=XML_ACCEPT)
    assert resp.status_code == 404 and resp.headers["Content-Type"].startswith("application/xml")
    err = ET.fromstring(resp.body)
    assert err.tag == "error" and err.findtext(".//code") == "not_found"
    invalid = http.post("/v1/jobs", {"service": "sleep", "input": {"seconds": -1}}, headers=XML_ACCEPT)
    assert invalid.status_code == 422
    root = ET.fromstring(invalid.body)
    assert root.findtext(".//code") == "validation_error"
    assert [i.text for i in root.find(".//detail").find("loc")] == ["input", "seconds"]


def test_xml_answer_is_well_formed_even_with_control_characters_in_the_request(env, http):
    invalid = http.post("/v1/jobs", {"service": "sleep", "input": {"\u0001": 1}}, headers=XML_ACCEPT)
    assert invalid.status_code == 422
    ET.fromstring(invalid.body)


def test_malformed_xml_body_is_400(env, http):
    for raw in (b"<job><service>echo</service>", b"not xml at all", b"<job><service>echo</job>"):
        resp = http.request("POST", "/v1/jobs", body=raw, headers={"Content-Type": "application/xml"})
        error_of(resp, 400, "malformed_body")


def test_xml_submit_body_is_accepted_and_typed(env, http):
    raw = (b'<?xml version="1.0" encoding="UTF-8"?><job><service>echo</service>'
           b"<input><n>42</n><ok>true</ok><name>ann</name><tags><t>a</t><t>b</t></tags></input>"
           b"<variables><MAX>5</MAX></variables><logLevel>2</logLevel><runId>xml-run-1</runId></job>")
    resp = http.request("POST", "/v1/jobs", body=raw, headers={"Content-Type": "application/xml"})
    assert resp.status_code == 202, resp.body
    job = body(resp)
    assert job["runId"] == "xml-run-1" and job["service"] == "echo"
    assert resp.headers["Location"].endswith(f"/v1/jobs/{job['jobId']}")
    rec = record(env, job["jobId"])
    assert rec.log_level == 2 and rec.variables == {"MAX": "5"}
    env.run_queue()
    result = json.loads(env.rt.blobs.get(record(env, job["jobId"]).result_key))
    assert result == {"n": 42, "ok": True, "name": "ann", "tags": ["a", "b"]}


def test_xml_submit_with_xml_answer(env, http):
    raw = b"<job><service>sleep</service><input><seconds>0</seconds></input></job>"
    resp = http.request("POST", "/v1/jobs", body=raw,
                        headers={"Content-Type": "text/xml", **XML_ACCEPT})
    assert resp.status_code == 202, resp.body
    root = ET.fromstring(resp.body)
    assert root.tag == "job" and root.findtext("status") == "queued"
    assert resp.headers["Location"].endswith("/v1/jobs/" + root.findtext("jobId"))
    bad = http.request("POST", "/v1/jobs", body=b"<job><service>sleep</service><input><seconds>-1"
                       b"</seconds></input></job>", headers={"Content-Type": "application/xml"})
    assert "seconds" in [loc[-1] for loc in detail_locs(error_of(bad, 422, "validation_error"))]


def test_a_bug_in_a_route_is_a_500_with_our_body_and_a_logged_traceback(env, http, caplog):
    """A programming error (not bad input, not AWS down) answers 500 with our error body, no
    Retry-After, and its traceback in the log."""
    def broken(tenant, job_id):
        raise KeyError("a bug")

    env.rt.api.get = broken
    with caplog.at_level("ERROR", logger="jobgate"):
        resp = http.get(f"/v1/jobs/{UNKNOWN_ID}")
    err = error_of(resp, 500, "internal_error")
    assert "a bug" not in err["message"] and "Retry-After" not in resp.headers
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert logged, [r.getMessage() for r in caplog.records]
