"""What the five source APIs offer: Prefer (Guidewire), runId (Starfish), Hop services,
back-pressure, dataload/snapshot, chains, XML."""

from __future__ import annotations

import csv
import io
import json
import threading
import time

import pytest

from tests.conftest import KEY_B, body

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)


@pytest.fixture
def background_worker(env):
    """Run the jobs queue in a thread while a request waits (as Lambda would)."""
    stop = threading.Event()

    def loop():
        while not stop.wait(0.2):
            env.run_queue("jobs")

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield
    stop.set()
    t.join(5)


# -- Prefer ---------------------------------------------------------------------------------

def test_prefer_wait_answers_200_when_the_job_ends_in_time(env, http, background_worker):
    resp = http.post("/v1/jobs", {"service": "echo", "input": {"a": 1}},
                     headers={"Prefer": "respond-async, wait=10"})
    assert resp.status_code == 200, resp.body
    assert resp.headers["Preference-Applied"] == "wait=10"
    assert body(resp)["status"] == "succeeded" and body(resp)["resultUrl"]


def test_prefer_wait_answers_202_when_the_job_is_still_running(env, http):
    sleeps, now = [], [0.0]

    def fake_sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    env.rt.api.sleep, env.rt.api.monotonic = fake_sleep, lambda: now[0]  # the API's clock
    resp = http.post("/v1/jobs", {"service": "sleep", "input": {"seconds": 30}},
                     headers={"Prefer": "wait=1, respond-async"})
    assert sum(sleeps) == pytest.approx(1.0)  # it waited the second asked for, then answered
    assert resp.status_code == 202
    assert resp.headers["Preference-Applied"] == "respond-async, wait=1"
    assert resp.headers["Retry-After"] and resp.headers["Location"]


@pytest.mark.moto  # counts DynamoDB reads through a botocore event hook
def test_prefer_wait_is_capped_at_20_and_does_not_poll_tightly(env, http):
    reads, sleeps, now = [], [], [0.0]
    env.rt.clients.dynamodb.meta.events.register(
        "after-call.dynamodb.GetItem", lambda **kw: reads.append(1))

    def fake_sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    env.rt.api.sleep, env.rt.api.monotonic = fake_sleep, lambda: now[0]
    resp = http.post("/v1/jobs", {"service": "sleep", "input": {"seconds": 60}},
                     headers={"Prefer": "wait=999"})
    assert resp.status_code == 202
    assert resp.headers["Preference-Applied"] == "wait=20"
    assert sum(sleeps) == pytest.approx(20.0)
    assert sleeps[0] == pytest.approx(0.1) and max(sleeps) <= 1.0
    assert len(reads) <= 30, f"{len(reads)} reads in 20 s"


def test_respond_async_alone(env, http):
    resp = http.post("/v1/jobs", {"service": "echo"}, headers={"Prefer": "respond-async"})
    assert resp.status_code == 202 and resp.headers["Preference-Applied"] == "respond-async"


# -- runId ----------------------------------------------------------------------------------

def test_run_id_replays_the_same_job_and_rejects_a_different_request(env, http):
    req = {"service": "echo", "input": {"x": 1}, "runId": "2f1c7e0a-aaaa-bbbb-cccc-000000000001"}
    first = http.post("/v1/jobs", req)
    again = http.post("/v1/jobs", req)
    assert first.status_code == 202 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert body(first)["jobId"] == body(again)["jobId"]
    assert body(again)["runId"] == req["runId"]
    other = http.post("/v1/jobs", {**req, "input": {"x": 2}})
    assert other.status_code == 409 and body(other)["error"]["code"] == "run_id_conflict"
    # another tenant's runId space is its own
    theirs = http.post("/v1/jobs", req, key=KEY_B)
    assert theirs.status_code == 202 and body(theirs)["jobId"] != body(first)["jobId"]
    assert env.run_queue() == 2


def test_run_id_is_free_again_after_its_job_is_deleted(env, http):
    req = {"service": "echo", "runId": "reuse-me"}
    first = body(http.post("/v1/jobs", req))["jobId"]
    env.run_queue()
    assert http.delete(f"/v1/jobs/{first}").status_code == 204
    again = http.post("/v1/jobs", req)
    assert again.status_code == 202 and body(again)["jobId"] != first


def test_run_id_whose_enqueue_was_lost_is_requeued_on_replay(env, http):
    req = {"service": "echo", "runId": "lost-message-1"}
    job_id = body(http.post("/v1/jobs", req))["jobId"]
    env.rt.clients.sqs.purge_queue(QueueUrl=env.queues["jobs"])  # the message is lost
    env.rt.api.clock = lambda: time.time() + 60
    assert http.post("/v1/jobs", req).status_code == 200
    env.rt.api.clock = time.time
    env.run_queue()
    assert body(http.get(f"/v1/jobs/{job_id}"))["status"] == "succeeded"


# -- Hop services ---------------------------------------------------------------------------

CSV_DOC = "id,name,score\n1,ann,5\n2,bob,\n3,cy,9\n4,di,1\n5,ed,7\n"


def test_hop_service_route_takes_the_document_and_variables(env, http):
    resp = http.request("POST", "/v1/services/dataload/jobs?beginAtRow=2&endAfterRow=5&MAX=3"
                        "&threadCount=2&argument=xyz&logLevel=3&runId=hop-1", body=CSV_DOC,
                        headers={"Content-Type": "text/csv"})
    assert resp.status_code == 202, resp.body
    job = body(resp)
    assert job["runId"] == "hop-1"
    env.run_queue()
    done = body(http.get(f"/v1/jobs/{job['jobId']}"))
    assert done["status"] == "succeeded", done
    assert done["variables"] == {"ROWS_READ": "5", "ROWS_WRITTEN": "3"}  # declared ones only
    result = json.loads(env.rt.blobs.get(env.rt.store.get("acme", job["jobId"], 0).result_key))
    assert result["rows"] == 3  # rows 2..4
    assert result["fields"]["id"] == {"count": 3, "nulls": 0, "min": 2, "max": 4}
    assert result["fields"]["score"] == {"count": 2, "nulls": 1, "min": 1, "max": 9}
    log = http.get(f"/v1/jobs/{job['jobId']}/log").body.decode()
    assert "2 thread(s)" in log and "chunk of" in log


def test_dataload_json_document_and_thread_count_gives_the_same_answer(env, http):
    rows = [{"n": i, "tag": f"t{i % 3}", "maybe": None if i % 4 == 0 else i} for i in range(1, 101)]
    ids = []
    for threads in (1, 4):
        resp = http.request("POST", f"/v1/services/dataload/jobs?threadCount={threads}",
                            body=json.dumps(rows), headers={"Content-Type": "application/json"})
        assert resp.status_code == 202, resp.body
        ids.append(body(resp)["jobId"])
    env.run_queue()
    results = [json.loads(env.rt.blobs.get(env.rt.store.get("acme", i, 0).result_key)) for i in ids]
    assert results[0] == results[1]
    assert results[0]["rows"] == 100
    assert results[0]["fields"]["maybe"] == {"count": 75, "nulls": 25, "min": 1, "max": 99}


@pytest.mark.parametrize("query,content,status,code", [
    ("", b"", 422, "validation_error"),                       # the document is required
    ("?threadCount=99", CSV_DOC.encode(), 422, "validation_error"),
    ("?MAX=lots", CSV_DOC.encode(), 422, "validation_error"),
    ("?logLevel=9", CSV_DOC.encode(), 422, "validation_error"),
])
def test_hop_service_bad_input(env, http, query, content, status, code):
    resp = http.request("POST", f"/v1/services/dataload/jobs{query}", body=content,
                        headers={"Content-Type": "text/csv"})
    assert resp.status_code == status and body(resp)["error"]["code"] == code


def test_hop_service_unknown_disabled_and_too_large(env, http):
    assert http.request("POST", "/v1/services/nope/jobs", body=b"x").status_code == 404
    env.settings(disabled_services=frozenset({"dataload"}))
    resp = http.request("POST", "/v1/services/dataload/jobs", body=CSV_DOC)
    assert resp.status_code == 409 and body(resp)["error"]["code"] == "service_disabled"
    listed = {s["name"]: s for s in body(http.get("/v1/services"))["services"]}
    assert listed["dataload"]["enabled"] is False and listed["echo"]["enabled"] is True
    assert listed["dataload"]["contentVariable"] == "DOCUMENT"
    assert listed["dataload"]["statusVariables"] == ["ROWS_READ", "ROWS_WRITTEN"]
    big = b"a" * (4 * 1024 * 1024 + 1)
    assert http.request("POST", "/v1/services/echo/jobs", body=big,
                        headers={"Content-Type": "application/octet-stream"}).status_code == 413


def test_malformed_document_fails_the_job_not_the_request(env, http):
    env.settings(job_max_attempts=1)  # before the submit: the job takes its limit then
    resp = http.request("POST", "/v1/services/dataload/jobs", body=b"[1, 2",
                        headers={"Content-Type": "application/json"})
    assert resp.status_code == 202, resp.body
    job_id = body(resp)["jobId"]
    assert env.run_queue() == 1
    job = body(http.get(f"/v1/jobs/{job_id}"))
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert "not valid JSON" in job["error"]["message"]
    assert env.messages() == []  # nothing left to retry


# -- back-pressure --------------------------------------------------------------------------

def test_queue_depth_over_the_limit_answers_503(env, http):
    env.settings(max_queue_depth=2)
    assert http.post("/v1/jobs", {"service": "echo"}).status_code == 202
    assert http.post("/v1/jobs", {"service": "echo"}).status_code == 202
    resp = http.post("/v1/jobs", {"service": "echo"})
    assert resp.status_code == 503 and int(resp.headers["Retry-After"]) > 0
    assert body(resp)["error"]["code"] == "unavailable"


def test_tenant_over_its_active_jobs_answers_429_and_others_are_not_affected(env, http):
    env.settings(tenant_max_active=2)
    for _ in range(2):
        assert http.post("/v1/jobs", {"service": "echo"}).status_code == 202
    resp = http.post("/v1/jobs", {"service": "echo"})
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    assert body(resp)["error"]["code"] == "quota_exceeded"
    assert http.post("/v1/jobs", {"service": "echo"}, key=KEY_B).status_code == 202
    env.run_queue()  # both end: their slots are given back at once
    assert http.post("/v1/jobs", {"service": "echo"}).status_code == 202


# -- chains ---------------------------------------------------------------------------------

def test_chain_passes_each_result_on_and_links_the_jobs(env, http):
    resp = http.post("/v1/jobs", {
        "service": "echo", "input": {"rows": [{"a": 1}, {"a": 5}]}, "logLevel": 3,
        "chain": [{"service": "echo", "input": {"second": True}},
                  {"service": "sleep", "input": {"seconds": 0, "steps": 1}}]})
    first = body(resp)["jobId"]
    for _ in range(3):
        env.run_queue()
    one = body(http.get(f"/v1/jobs/{first}"))
    assert one["status"] == "succeeded" and one["next"]
    two = body(http.get(f"/v1/jobs/{one['next']}"))
    assert two["previous"] == first and two["status"] == "succeeded" and two["next"]
    three = body(http.get(f"/v1/jobs/{two['next']}"))
    assert three["previous"] == two["jobId"] and three["status"] == "succeeded"
    assert "next" not in three
    stored = env.rt.store.get("acme", two["jobId"], 0)
    assert stored.log_level == 3 and stored.service == "echo"
    assert env.rt.blobs.get(stored.content_key) == b'{"rows":[{"a":1},{"a":5}]}'
    listed = body(http.get("/v1/jobs"))["jobs"]
    assert len(listed) == 3


def test_a_failed_job_stops_its_chain(env, http):
    env.settings(job_max_attempts=1)
    resp = http.post("/v1/jobs", {"service": "sleep", "input": {"seconds": 0, "fail": True},
                                  "chain": [{"service": "echo"}]})
    env.run_queue()
    job = body(http.get(f"/v1/jobs/{body(resp)['jobId']}"))
    assert job["status"] == "failed" and "next" not in job
    assert len(body(http.get("/v1/jobs"))["jobs"]) == 1


def test_chain_step_input_is_validated_at_submit(env, http):
    resp = http.post("/v1/jobs", {"service": "echo", "chain": [{"service": "sleep",
                                                                "input": {"seconds": -4}}]})
    assert resp.status_code == 422
    assert body(resp)["error"]["details"][0]["loc"][0] == "chain[0].input"
    resp = http.post("/v1/jobs", {"service": "echo", "chain": [{"service": "ghost"}]})
    assert resp.status_code == 404


# -- XML ------------------------------------------------------------------------------------

def test_xml_in_and_out(env, http):
    xml = ("<job><service>sleep</service><runId>xml-1</runId><logLevel>2</logLevel>"
           "<input><seconds>0</seconds><steps>2</steps></input>"
           "<variables><argument>abc</argument></variables></job>")
    resp = http.request("POST", "/v1/jobs", body=xml, headers={
        "Content-Type": "application/xml", "Accept": "application/xml"})
    assert resp.status_code == 202, resp.body
    assert resp.headers["Content-Type"] == "application/xml"
    from defusedxml import ElementTree

    root = ElementTree.fromstring(resp.body)
    assert root.tag == "job" and root.findtext("status") == "queued"
    assert root.findtext("runId") == "xml-1"
    err = http.get("/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers={"Accept": "application/xml"})
    assert err.status_code == 404 and ElementTree.fromstring(err.body).tag == "error"
    listing = http.get("/v1/jobs", headers={"Accept": "application/xml"})
    assert ElementTree.fromstring(listing.body).tag == "jobs"


@pytest.mark.parametrize("doc", [
    b"<job><service>echo</service>",
    b'<?xml version="1.0"?><!DOCTYPE job [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    b"<job><service>&b;</service></job>",
    b'<!DOCTYPE job [<!ENTITY x SYSTEM "file:///etc/passwd">]><job><service>&x;</service></job>',
    b"<notjob/>",
    b"\xff\xfe<job/>",
])
def test_bad_xml_is_a_400_never_a_5xx(env, http, doc):
    resp = http.request("POST", "/v1/jobs", body=doc, headers={"Content-Type": "application/xml"})
    assert resp.status_code == 400, resp.body
    assert body(resp)["error"]["code"] == "malformed_body"


# -- snapshot -------------------------------------------------------------------------------

@pytest.mark.moto  # counts S3 multipart parts through a botocore event hook
def test_snapshot_streams_a_multipart_csv(env, http):
    calls = []
    env.rt.clients.s3.meta.events.register("after-call.s3.UploadPart", lambda **kw: calls.append(1))
    resp = http.post("/v1/jobs", {"service": "snapshot", "input": {"rows": 250_000}})
    env.run_queue()
    job = body(http.get(f"/v1/jobs/{body(resp)['jobId']}"))
    assert job["status"] == "succeeded" and job["resultType"] == "text/csv"
    assert job["resultSize"] > 8 * 1024 * 1024 and len(calls) >= 2, "streamed in parts"
    assert job["variables"] == {"ROWS_WRITTEN": "250000"}
    data = env.rt.blobs.get(env.rt.store.get("acme", job["jobId"], 0).result_key).decode()
    rows = list(csv.reader(io.StringIO(data)))
    assert rows[0] == ["id", "sku", "name", "quantity", "price"] and len(rows) == 250_001
    assert rows[-1][0] == "250000"
