"""Worker services and the worker routes (docs/api.md "Workers") through the real Chalice
app on moto: claim (long poll), heartbeat, complete (inline, uploaded), fail and retry,
cancel seen by the worker, lease lapse and take-over, the watchdog, the run deadline, worker
keys, and webhooks and chains after a worker job. Time is a settable clock installed on the
runtime: no test waits for a lease."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from chalicelib import leases
from chalicelib.batch import Record
from chalicelib.blobs import result_key
from chalicelib.messages import JobMessage, Retry
from tests.conftest import KEY_A, body

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)

WKEY = "jgw_test-worker-key-0123456789"
EXPORT_KEY = "jgw_export-only-key-0123456789"
TENANT = "acme"


@dataclass
class Clock:
    now: float = field(default_factory=time.time)
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Any = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


@pytest.fixture
def clock(env: Any) -> Clock:
    c = Clock()
    rt = env.rt
    rt.api.clock = rt.view.clock = rt.worker.clock = rt.workers.clock = c
    rt.workers.sleep = c.sleep
    rt.workers.keys.add(WKEY, ["report"], label="test")
    rt.workers.keys.add(EXPORT_KEY, ["export"], label="test")
    return c


def submit(http: Any, data: Any = None, **extra: Any) -> str:
    resp = http.post("/v1/jobs", {"service": "report", "input": data or {}, **extra})
    assert resp.status_code == 202, resp.body
    return body(resp)["jobId"]


def claim(http: Any, key: str = WKEY, wait: float = 0, services: Any = ("report",)) -> Any:
    payload: dict[str, Any] = {"waitSeconds": wait}
    if services is not None:
        payload["services"] = list(services)
    return http.post("/v1/worker/claim", payload, key=key)


def claimed(http: Any, **kw: Any) -> dict[str, Any]:
    resp = claim(http, **kw)
    assert resp.status_code == 200, (resp.status_code, resp.body)
    return body(resp)


def report(http: Any, job_id: str, action: str, token: str, key: str = WKEY, **fields: Any) -> Any:
    return http.post(f"/v1/worker/jobs/{job_id}/{action}", {"leaseToken": token, **fields},
                     key=key)


def job(http: Any, job_id: str) -> dict[str, Any]:
    resp = http.get(f"/v1/jobs/{job_id}")
    assert resp.status_code == 200, resp.body
    return body(resp)


def error_code(resp: Any) -> str:
    return body(resp)["error"]["code"]


def s3_object(env: Any, url: str) -> bytes:
    """The object behind a presigned URL (contentUrl)."""
    bucket, _, key = urlsplit(url).path.lstrip("/").partition("/")
    return env.rt.clients.s3.get_object(Bucket=bucket, Key=unquote(key))["Body"].read()


def result_bytes(env: Any, http: Any, resource: dict[str, Any]) -> bytes:
    """The result a client downloads: our resultUrl link, then the presigned URL it
    redirects to."""
    link = http.get(urlsplit(resource["resultUrl"]).path, key=None)
    assert link.status_code == 303, link.body
    return s3_object(env, link.headers["Location"])


def job_record(rt: Any, job_id: str, body_: str | None = None, receives: int = 1) -> Record:
    return Record(message_id="m", body=body_ or JobMessage(TENANT, job_id, "report").dumps(),
                  receipt_handle="rh", receive_count=receives,
                  queue_name=rt.settings.jobs_queue_url.rsplit("/", 1)[-1])


# -- declarations ----------------------------------------------------------------------------

def test_services_show_where_they_run(env, http, clock):
    listed = {s["name"]: s for s in body(http.get("/v1/services"))["services"]}
    assert listed["report"]["runsOn"] == "worker" and listed["echo"]["runsOn"] == "lambda"
    assert listed["report"]["statusVariables"] == ["STEP"]
    bad = http.post("/v1/jobs", {"service": "report", "input": {"seconds": 0}})
    assert bad.status_code == 422


def test_the_job_lambda_never_runs_a_worker_job(env, http, clock):
    job_id = submit(http)
    assert env.run_queue() == 0  # no job message: workers claim from the claim index
    env.rt.dispatcher.send_job(TENANT, job_id, "report")  # a stray message (a replay's)
    env.rt.dispatcher.send_job(TENANT, job_id)  # an older message without its service
    assert env.run_queue() == 2
    after = job(http, job_id)
    assert after["status"] == "queued" and after["attempts"] == 0
    assert env.messages() == []  # both were dropped, not retried


# -- the happy path --------------------------------------------------------------------------

def test_claim_heartbeat_progress_and_inline_complete(env, http, clock):
    job_id = submit(http, {"seconds": 30, "steps": 3}, logLevel=2)
    c = claimed(http)
    assert c["jobId"] == job_id and c["tenant"] == TENANT and c["service"] == "report"
    assert c["input"] == {"seconds": 30, "steps": 3} and c["attempt"] == 1
    assert c["logLevel"] == 2 and c["leaseToken"] and c["leaseExpiresAt"]
    assert "contentUrl" not in c
    assert job(http, job_id)["status"] == "running"
    assert claim(http).status_code == 204  # nothing else to claim

    clock.now += 20
    hb = report(http, job_id, "heartbeat", c["leaseToken"],
                progress={"percent": 33.3, "message": "step 1/3"}, variables={"STEP": 1},
                log=["step 1 done"])
    assert hb.status_code == 200, hb.body
    assert body(hb)["canceled"] is False and body(hb)["leaseExpiresAt"] > c["leaseExpiresAt"]
    seen = job(http, job_id)
    assert seen["progress"] == {"percent": 33.3, "message": "step 1/3"}
    assert seen["variables"] == {"STEP": "1"}

    clock.now += 20
    done = report(http, job_id, "complete", c["leaseToken"], result={"rows": 3},
                  log=["finished"])
    assert done.status_code == 200, done.body
    final = job(http, job_id)
    assert final["status"] == "succeeded" and final["progress"]["percent"] == 100.0
    assert final["resultType"] == "application/json" and final["duration"] == 40.0
    assert json.loads(result_bytes(env, http, final)) == {"rows": 3}
    log = http.get(f"/v1/jobs/{job_id}/log").body
    log = log.decode() if isinstance(log, bytes) else log
    assert "step 1 done" in log and "finished" in log
    record = env.rt.store.get(TENANT, job_id, clock.now)
    assert record.claim_key is None and record.available_at is None  # out of the index
    again = report(http, job_id, "complete", c["leaseToken"], result={"rows": 4})
    assert again.status_code == 409 and error_code(again) == "lease_lost"


def test_a_result_uploaded_to_the_presigned_url(env, http, clock):
    job_id = submit(http)
    c = claimed(http)
    bucket, _, key = urlsplit(c["resultUploadUrl"]).path.lstrip("/").partition("/")
    assert unquote(key) == result_key(TENANT, job_id, c["leaseToken"])  # bound to the lease
    early = report(http, job_id, "complete", c["leaseToken"], resultUploaded=True)
    assert early.status_code == 400 and error_code(early) == "result_missing"
    env.rt.clients.s3.put_object(Bucket=bucket, Key=unquote(key), Body=b"a,b\n1,2\n")
    done = report(http, job_id, "complete", c["leaseToken"], resultUploaded=True,
                  resultType="text/csv")
    assert done.status_code == 200, done.body
    final = job(http, job_id)
    assert final["status"] == "succeeded"
    assert (final["resultType"], final["resultSize"]) == ("text/csv", 8)
    assert result_bytes(env, http, final) == b"a,b\n1,2\n"


def test_an_inline_result_over_256_kb_is_refused(env, http, clock):
    submit(http)
    c = claimed(http)
    big = report(http, c["jobId"], "complete", c["leaseToken"], result="x" * (257 * 1024))
    assert big.status_code == 413
    assert job(http, c["jobId"])["status"] == "running"  # the worker may still upload it


def test_content_is_handed_over_through_a_presigned_get(env, http, clock):
    resp = http.post("/v1/services/report/jobs", body=b'{"doc": 1}',
                     headers={"Content-Type": "application/json"})
    assert resp.status_code == 202, resp.body
    c = claimed(http)
    assert c["contentType"] == "application/json"
    assert s3_object(env, c["contentUrl"]) == b'{"doc": 1}'


# -- long poll -------------------------------------------------------------------------------

def test_a_job_submitted_during_a_long_poll_is_handed_over_within_a_second(env, http, clock):
    submitted: dict[str, float] = {}

    def submit_on_third_pause(n: int) -> None:
        if n == 3:
            submitted["at"] = clock.now
            submitted["id"] = submit(http)

    clock.on_sleep = submit_on_third_pause
    c = claimed(http, wait=20)
    assert c["jobId"] == submitted["id"]
    assert clock.now - submitted["at"] <= 1.0
    clock.on_sleep = None
    started = clock.now
    assert claim(http, wait=5).status_code == 204
    assert 5.0 <= clock.now - started < 5.6 and max(clock.sleeps) <= 0.5
    assert claim(http, wait=21).status_code == 400


# -- failures --------------------------------------------------------------------------------

def test_fail_retries_later_then_fails_for_good(env, http, clock):
    clock.now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    job_id = submit(http)
    c = claimed(http)
    resp = report(http, job_id, "fail", c["leaseToken"],
                  error={"code": "boom", "message": "disk full"}, retryAfterSeconds=30)
    assert resp.status_code == 200 and body(resp)["status"] == "queued"
    assert body(resp)["retryAt"] == "2026-01-01T00:00:30.000Z"
    waiting = job(http, job_id)
    assert waiting["error"] == {"code": "boom", "message": "disk full"}
    assert (waiting["attempts"], waiting["maxAttempts"]) == (1, 3)
    assert waiting["retryAt"] == "2026-01-01T00:00:30.000Z"  # the job resource says it too
    assert claim(http).status_code == 204  # not due yet
    clock.now += 31
    c2 = claimed(http)
    assert c2["jobId"] == job_id and c2["attempt"] == 2 and c2["leaseToken"] != c["leaseToken"]
    assert "retryAt" not in job(http, job_id)  # running again
    late = report(http, job_id, "heartbeat", c["leaseToken"])
    assert late.status_code == 409 and error_code(late) == "lease_lost"
    resp = report(http, job_id, "fail", c2["leaseToken"],
                  error={"code": "invalid_input", "message": "no such report"})
    assert body(resp)["status"] == "failed"
    final = job(http, job_id)
    assert final["status"] == "failed" and final["error"]["code"] == "invalid_input"
    assert final["attempts"] == 2


def test_the_last_attempt_fails_the_job(env, http, clock):
    env.settings(job_max_attempts=1)
    job_id = submit(http)
    c = claimed(http)
    resp = report(http, job_id, "fail", c["leaseToken"], error={"code": "boom"},
                  retryAfterSeconds=5)
    assert body(resp)["status"] == "failed"
    assert job(http, job_id)["status"] == "failed"


# -- cancel ----------------------------------------------------------------------------------

def test_cancel_is_seen_through_the_heartbeat_and_a_late_result_is_refused(env, http, clock):
    job_id = submit(http)
    c = claimed(http)
    assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    hb = report(http, job_id, "heartbeat", c["leaseToken"], progress={"percent": 50})
    assert hb.status_code == 200 and body(hb)["canceled"] is True
    late = report(http, job_id, "complete", c["leaseToken"], result={"late": True})
    assert late.status_code == 409 and error_code(late) == "canceled"
    failed = report(http, job_id, "fail", c["leaseToken"], error={"code": "x"})
    assert failed.status_code == 409 and error_code(failed) == "canceled"
    final = job(http, job_id)
    assert final["status"] == "canceled" and "resultUrl" not in final
    listed = env.rt.clients.s3.list_objects_v2(Bucket=env.rt.settings.bucket_name,
                                               Prefix=f"results/{TENANT}/{job_id}/")
    assert listed.get("KeyCount", 0) == 0  # the late result was dropped


def test_a_queued_worker_job_canceled_leaves_the_claim_index(env, http, clock):
    job_id = submit(http)
    assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    assert claim(http).status_code == 204
    assert env.rt.store.get(TENANT, job_id, clock.now).claim_key is None


# -- lapsed leases ---------------------------------------------------------------------------

def test_a_lapsed_lease_is_taken_over_and_the_first_workers_result_refused(env, http, clock):
    job_id = submit(http)
    first = claimed(http)
    clock.now += 10
    assert report(http, job_id, "heartbeat", first["leaseToken"]).status_code == 200
    clock.now += 61  # worker 1 went silent for longer than its lease
    second = claimed(http)
    assert second["jobId"] == job_id and second["attempt"] == 2
    assert job(http, job_id)["error"]["code"] == "lease_expired"
    hb = report(http, job_id, "heartbeat", first["leaseToken"])
    assert hb.status_code == 409 and error_code(hb) == "lease_lost"
    late = report(http, job_id, "complete", first["leaseToken"], result={"by": 1})
    assert late.status_code == 409 and error_code(late) == "lease_lost"
    done = report(http, job_id, "complete", second["leaseToken"], result={"by": 2})
    assert done.status_code == 200
    final = job(http, job_id)
    assert final["status"] == "succeeded" and json.loads(result_bytes(env, http, final)) \
        == {"by": 2}


def test_a_complete_after_the_lease_lapsed_is_refused_even_before_a_takeover(env, http, clock):
    job_id = submit(http)
    c = claimed(http)
    clock.now += 61
    late = report(http, job_id, "complete", c["leaseToken"], result={})
    assert late.status_code == 409 and error_code(late) == "lease_lost"


def test_the_watchdog_returns_or_fails_a_job_whose_worker_died(env, http, clock):
    env.settings(job_max_attempts=2)
    job_id = submit(http, callbackUrl="http://127.0.0.1:9/hook")
    first = claimed(http)
    delayed = env.rt.clients.sqs.get_queue_attributes(
        QueueUrl=env.queues["jobs"], AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert delayed["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"  # the watchdog

    with pytest.raises(Retry) as held:  # the lease holds: look again after it ends
        env.rt.workers.watch(JobMessage(TENANT, job_id, "report").dumps())
    assert 60 <= held.value.delay <= 62
    clock.now += 1
    report(http, job_id, "heartbeat", first["leaseToken"])  # alive, then dead
    clock.now += 61
    env.rt.records.handle_job_record(job_record(env.rt, job_id))  # the job Lambda, as SQS delivers it
    seen = job(http, job_id)
    assert seen["status"] == "queued" and seen["error"]["code"] == "lease_expired"

    second = claimed(http)  # attempt 2, the last one: its worker dies too
    clock.now += 1
    report(http, job_id, "heartbeat", second["leaseToken"])
    clock.now += 61
    env.rt.records.handle_job_record(job_record(env.rt, job_id))
    final = job(http, job_id)
    assert final["status"] == "failed" and final["error"]["code"] == "lease_expired"
    events = [json.loads(json.loads(m["Body"])["event"]) for m in env.messages("callbacks")]
    assert [e["data"]["status"] for e in events] == ["failed"]
    # the message of a finished job is dropped (and a lost webhook re-queued, once)
    env.rt.records.handle_job_record(job_record(env.rt, job_id))


def test_the_watchdog_replaces_its_message_before_the_receive_limit(env, http, clock):
    job_id = submit(http)
    claimed(http)
    env.messages()  # nothing visible yet: the claim's watchdog is delayed
    before = int(env.rt.clients.sqs.get_queue_attributes(
        QueueUrl=env.queues["jobs"], AttributeNames=["ApproximateNumberOfMessagesDelayed"])[
        "Attributes"]["ApproximateNumberOfMessagesDelayed"])
    env.rt.workers.watch(JobMessage(TENANT, job_id, "report").dumps(),
                         receive_count=leases.REFRESH_AT_RECEIVE)  # returns: delete this one
    after = int(env.rt.clients.sqs.get_queue_attributes(
        QueueUrl=env.queues["jobs"], AttributeNames=["ApproximateNumberOfMessagesDelayed"])[
        "Attributes"]["ApproximateNumberOfMessagesDelayed"])
    assert after == before + 1


def test_watch_delay_doubles_up_to_a_ceiling_and_stops_at_the_deadline():
    from chalicelib.jobs import Job

    def at(age: float, lease_left: float = 30, deadline: float | None = None) -> int:
        j = Job(tenant="t", job_id="j", service="report", status="running", created_at=0,
                expires_at=1e12, claimed_at=1000.0, lease_until=1000.0 + age + lease_left,
                run_deadline=deadline)
        return leases.watch_delay(j, 1000.0 + age, 86_400, 43_000)

    assert at(0) == 60 and at(100) == 100 and at(2000) == 2000
    assert at(50_000) == 3600  # the ceiling
    assert at(10, lease_left=300) == 301  # never before the lease ends
    assert at(2000, deadline=1000.0 + 2500) == 501  # never after the deadline
    looks, now = 0, 0.0
    while now < 86_400:
        now += at(now)
        looks += 1
    assert looks <= 40  # a day-long job: a few dozen looks, well within SQS's limits


# -- run deadline and long jobs --------------------------------------------------------------

def test_heartbeats_keep_a_job_alive_past_15_minutes(env, http, clock):
    job_id = submit(http, {"seconds": 1800, "steps": 60})
    c = claimed(http)
    for step in range(1, 61):  # 30 minutes of simulated time, a heartbeat every 30 s
        clock.now += 30
        hb = report(http, job_id, "heartbeat", c["leaseToken"],
                    progress={"percent": 100 * step / 60}, variables={"STEP": step})
        assert hb.status_code == 200 and body(hb)["canceled"] is False, hb.body
        if step == 40:
            assert claim(http).status_code == 204  # the live lease is not claimable
            with pytest.raises(Retry):
                env.rt.workers.watch(JobMessage(TENANT, job_id, "report").dumps())
    done = report(http, job_id, "complete", c["leaseToken"], result={"steps": 60})
    assert done.status_code == 200
    final = job(http, job_id)
    assert final["status"] == "succeeded" and final["duration"] == 1800.0
    assert final["attempts"] == 1 and final["variables"] == {"STEP": "60"}


def test_an_attempt_ends_at_the_maximum_runtime(env, http, clock):
    env.settings(job_max_runtime_seconds=120)
    job_id = submit(http)
    c = claimed(http)
    clock.now += 50
    assert report(http, job_id, "heartbeat", c["leaseToken"]).status_code == 200
    clock.now += 50
    hb = report(http, job_id, "heartbeat", c["leaseToken"])
    assert hb.status_code == 200
    assert body(hb)["leaseExpiresAt"] == c["deadlineAt"]  # capped at the run deadline
    clock.now += 21
    late = report(http, job_id, "heartbeat", c["leaseToken"])
    assert late.status_code == 409 and error_code(late) == "lease_lost"
    env.rt.records.handle_job_record(job_record(env.rt, job_id))
    seen = job(http, job_id)
    assert seen["status"] == "queued" and seen["error"]["code"] == "timed_out"


# -- keys ------------------------------------------------------------------------------------

def test_tenant_keys_and_worker_keys_each_open_only_their_routes(env, http, clock):
    job_id = submit(http)
    assert claim(http, key=KEY_A).status_code == 401
    assert claim(http, key=None).status_code == 401
    assert http.get("/v1/jobs", key=WKEY).status_code == 401
    assert http.post("/v1/jobs", {"service": "report"}, key=WKEY).status_code == 401
    assert http.get(f"/v1/jobs/{job_id}", key=WKEY).status_code == 401
    c = claimed(http)
    assert report(http, job_id, "heartbeat", c["leaseToken"], key=KEY_A).status_code == 401


def test_a_worker_key_serves_only_its_services(env, http, clock):
    job_id = submit(http)
    resp = claim(http, key=EXPORT_KEY)  # asks for report, may only claim export
    assert resp.status_code == 401
    assert claim(http, key=EXPORT_KEY, services=None).status_code == 404  # export: no such service
    c = claimed(http)
    for action, extra in (("heartbeat", {}), ("complete", {"result": 1}),
                          ("fail", {"error": {"code": "x"}})):
        resp = report(http, job_id, action, c["leaseToken"], key=EXPORT_KEY, **extra)
        assert resp.status_code == 404, (action, resp.body)
    assert job(http, job_id)["status"] == "running"


@pytest.mark.moto  # scans DynamoDB for the key (stored hashed)
def test_worker_keys_are_issued_listed_and_revoked(env, http, clock):
    from chalicelib.admin import AdminError, WorkerKeyAdmin

    admin = WorkerKeyAdmin(env.rt.workers.keys, actor="ops")
    key = admin.issue(["report", "export"], label="fargate")
    assert key.startswith("jgw_")
    items = env.rt.clients.dynamodb.scan(TableName=env.rt.settings.table_name)["Items"]
    assert key not in json.dumps(items)  # stored hashed
    listed = [k for k in admin.list() if k.label == "fargate"]
    assert listed and listed[0].services == ("export", "report")
    submit(http)
    assert claim(http, key=key).status_code == 200
    admin.revoke(listed[0].key_id)
    assert claim(http, key=key).status_code == 401
    with pytest.raises(AdminError):
        admin.revoke("nosuchkey")


def test_bad_worker_requests_are_4xx(env, http, clock):
    job_id = submit(http)
    c = claimed(http)
    cases = [
        ("/v1/worker/claim", {"services": "report"}, 400),
        ("/v1/worker/claim", {"services": ["report"], "waitSeconds": "x"}, 400),
        ("/v1/worker/claim", {"services": ["echo"]}, 401),
        (f"/v1/worker/jobs/{job_id}/heartbeat", {}, 400),
        (f"/v1/worker/jobs/{job_id}/heartbeat", {"leaseToken": "garbage"}, 400),
        (f"/v1/worker/jobs/{job_id}/heartbeat",
         {"leaseToken": c["leaseToken"], "progress": {"percent": "x"}}, 400),
        (f"/v1/worker/jobs/{job_id}/complete", {"leaseToken": c["leaseToken"]}, 400),
        (f"/v1/worker/jobs/{job_id}/fail", {"leaseToken": c["leaseToken"],
                                           "retryAfterSeconds": -1}, 400),
        ("/v1/worker/jobs/not-a-job/heartbeat", {"leaseToken": c["leaseToken"]}, 404),
    ]
    for path, payload, status in cases:
        resp = http.post(path, payload, key=WKEY)
        assert resp.status_code == status, (path, payload, resp.status_code, resp.body)
        assert "error" in body(resp)
    garbled = http.request("POST", "/v1/worker/claim", key=WKEY, body=b"{nope",
                           headers={"Content-Type": "application/json"})
    assert garbled.status_code == 400


# -- what follows the end --------------------------------------------------------------------

def test_a_worker_jobs_webhook_fires_and_its_chain_continues(env, http, clock):
    job_id = submit(http, callbackUrl="http://127.0.0.1:9/hook",
                    chain=[{"service": "echo", "input": {}}])
    c = claimed(http)
    assert report(http, job_id, "complete", c["leaseToken"], result={"total": 7}).status_code == 200
    first = job(http, job_id)
    assert first["status"] == "succeeded" and first["next"]
    events = [json.loads(json.loads(m["Body"])["event"]) for m in env.messages("callbacks")]
    assert [(e["type"], e["data"]["jobId"], e["data"]["status"]) for e in events] == [
        ("job.finished", job_id, "succeeded")]
    env.run_queue()  # the chain's next job runs in the job Lambda
    nxt = job(http, first["next"])
    assert nxt["status"] == "succeeded" and nxt["previous"] == job_id
    assert json.loads(result_bytes(env, http, nxt)) == {}  # echo of its own input


def test_a_chain_step_on_a_worker_service_waits_for_a_claim(env, http, clock):
    resp = http.post("/v1/jobs", {"service": "echo", "input": {"a": 1},
                                  "chain": [{"service": "report", "input": {"steps": 2}}]})
    first = body(resp)["jobId"]
    env.run_queue()
    nxt = job(http, first)["next"]
    clock.now = time.time() + 1  # the chain's step was created on the job Lambda's clock
    c = claimed(http)
    assert c["jobId"] == nxt and c["input"] == {"steps": 2}
    assert json.loads(s3_object(env, c["contentUrl"])) == {"a": 1}  # the previous result


# -- what the worker SDK sends (client/jobgate/worker.py), one contract -----------------------

def test_fail_takes_the_sdks_codes_and_fractional_retry_delays(env, http, clock):
    job_id = submit(http)
    for attempt, (code, after) in enumerate([("handler_error", 2.0), ("result_error", 0.5)], 1):
        c = claimed(http)
        assert c["attempt"] == attempt
        resp = report(http, job_id, "fail", c["leaseToken"], retryAfterSeconds=after,
                      error={"code": code, "message": "ValueError: boom"})
        assert resp.status_code == 200, resp.body
        assert body(resp)["status"] == "queued"
        assert job(http, job_id)["error"]["code"] == code
        clock.now += 2  # 2.0 → 2 s; 0.5 is rounded up to 1 s
    c = claimed(http)
    resp = report(http, job_id, "fail", c["leaseToken"], retryAfterSeconds=0,
                  error={"code": "unknown_service", "message": "no handler here"})
    assert body(resp)["status"] == "failed"  # the third attempt was the last one
    for bad in (float("nan"), "1", True, -0.5):
        c = report(http, job_id, "fail", "x", retryAfterSeconds=bad)
        assert c.status_code == 400


def test_a_worker_shutdown_gives_its_attempt_back(env, http, clock):
    env.settings(job_max_attempts=1)
    job_id = submit(http)
    for _ in range(3):  # deploys and scale-ins: the job's one attempt is never used up
        c = claimed(http)
        assert c["attempt"] == 1
        resp = report(http, job_id, "fail", c["leaseToken"], retryAfterSeconds=0,
                      error={"code": "worker_shutdown", "message": "SIGTERM"})
        assert body(resp)["status"] == "queued", resp.body
        seen = job(http, job_id)
        assert seen["attempts"] == 0 and seen["error"]["code"] == "worker_shutdown"
    c = claimed(http)  # still claimable at once, and it may still succeed
    assert report(http, job_id, "complete", c["leaseToken"], result={}).status_code == 200
    final = job(http, job_id)
    assert final["status"] == "succeeded" and final["attempts"] == 1


def test_worker_shutdowns_count_once_a_job_used_up_its_give_backs(env, http, clock):
    from chalicelib.leases import MAX_SHUTDOWNS

    env.settings(job_max_attempts=2)
    job_id = submit(http)
    for _ in range(MAX_SHUTDOWNS):
        c = claimed(http)
        report(http, job_id, "fail", c["leaseToken"], retryAfterSeconds=0,
               error={"code": "worker_shutdown"})
    c = claimed(http)  # a worker that "shuts down" on every job cannot keep one forever
    resp = report(http, job_id, "fail", c["leaseToken"], retryAfterSeconds=0,
                  error={"code": "worker_shutdown"})
    assert body(resp)["status"] == "queued" and job(http, job_id)["attempts"] == 1
    c = claimed(http)
    resp = report(http, job_id, "fail", c["leaseToken"], retryAfterSeconds=0,
                  error={"code": "worker_shutdown"})
    assert body(resp)["status"] == "failed"


def test_the_running_log_stays_within_the_items_reserve(env, http, clock):
    from chalicelib import limits
    from chalicelib.leases import LOG_ITEM_BYTES, log_bytes

    job_id = submit(http, logLevel=3)
    c = claimed(http)
    line = "é" * 999  # 1,998 bytes of UTF-8: lines capped by characters would not hold
    for i in range(30):
        clock.now += 1
        hb = report(http, job_id, "heartbeat", c["leaseToken"], log=[f"{i} {line}"] * 5,
                    progress={"percent": i})
        assert hb.status_code == 200 and body(hb)["canceled"] is False, hb.body
    item = env.rt.store.get(TENANT, job_id, clock.now)
    kept = item.log_lines
    assert log_bytes(kept[:-1]) <= LOG_ITEM_BYTES
    assert log_bytes(kept) <= limits.LIFECYCLE_RESERVE["log"]
    assert "log is full" in kept[-1] and sum("log is full" in k for k in kept) == 1
    assert job(http, job_id)["progress"]["percent"] == 29  # the lease and progress went on
    resp = report(http, job_id, "fail", c["leaseToken"], log=["more"] * 200,
                  error={"code": "boom"})
    assert body(resp)["status"] == "queued"
    assert log_bytes(env.rt.store.get(TENANT, job_id, clock.now).log_lines) \
        <= limits.LIFECYCLE_RESERVE["log"]


def test_heartbeats_keep_declared_variables_only_and_cut_long_values(env, http, clock):
    job_id = submit(http)
    c = claimed(http)
    hb = report(http, job_id, "heartbeat", c["leaseToken"], progress={"message": "ü" * 3000},
                variables={"STEP": "x" * 5000, **{f"V{i}": "y" * 200 for i in range(40)}})
    assert hb.status_code == 200, hb.body
    item = env.rt.store.get(TENANT, job_id, clock.now)
    assert set(item.status_vars) == {"STEP"} and len(item.status_vars["STEP"]) == 256
    assert len(item.progress_message.encode()) <= 1000


def test_the_jobs_waiting_metric_counts_claimable_jobs_per_service(env, http, clock, capsys):
    ids = [submit(http) for _ in range(3)]
    c = claimed(http)  # one runs: it does not wait
    report(http, c["jobId"], "heartbeat", c["leaseToken"])
    capsys.readouterr()
    assert env.rt.workers.publish_waiting("test") == {"report": 2}
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "_aws" in x]
    emf = [x for x in lines if "WorkerJobsWaiting" in x]
    assert len(emf) == 1
    assert emf[0]["WorkerJobsWaiting"] == 2 and emf[0]["Service"] == "report" \
        and emf[0]["Stage"] == "test"
    spec = emf[0]["_aws"]["CloudWatchMetrics"][0]
    assert spec["Namespace"] == "Jobgate" and spec["Dimensions"] == [["Service", "Stage"]]
    clock.now += 61  # the running job's worker went silent: claimable again, so waiting
    assert env.rt.workers.publish_waiting("test") == {"report": 3}
    for job_id in ids:
        http.post(f"/v1/jobs/{job_id}/cancel", {})
    assert env.rt.workers.publish_waiting("test") == {"report": 0}


def test_the_metric_function_is_scheduled_every_minute(env):
    import app as app_module

    sources = [s for s in app_module.app.event_sources
               if getattr(s, "name", "") == "publish_worker_metrics"]
    assert len(sources) == 1 and sources[0].schedule_expression.to_string() == "rate(1 minute)"


def test_a_claim_no_worker_heard_of_gives_its_attempt_back(env, http, clock):
    # A long poll whose worker died (or lost its connection) still takes a job: its lease
    # lapses with no heartbeat ever, and that attempt does not count.
    env.settings(job_max_attempts=1)
    job_id = submit(http)
    lost = claimed(http)
    clock.now += 61
    c = claimed(http)
    assert c["attempt"] == 1 and c["leaseToken"] != lost["leaseToken"]
    seen = job(http, job_id)
    assert seen["error"]["code"] == "lease_expired" and "no heartbeat" in seen["error"]["message"]
    assert report(http, job_id, "complete", c["leaseToken"], result={}).status_code == 200
    assert job(http, job_id)["attempts"] == 1


@pytest.mark.moto  # reads the quota counter items from DynamoDB
def test_a_worker_job_gives_its_quota_slot_back_when_it_ends(env, http, clock):
    """The tenant quota (chalicelib/capacity.py TenantSlots): a worker job's terminal write
    (the worker's complete or fail) gives its slot back, as a Lambda job's does."""
    env.settings(tenant_max_active=1)

    def slots() -> int:
        db, total = env.rt.clients.dynamodb, 0
        for shard in range(16):
            item = db.get_item(TableName=env.rt.settings.table_name, Key={
                "pk": {"S": f"SYS#active#{TENANT}#{shard}"}, "sk": {"S": "COUNT"}}).get("Item")
            total += int(item["n"]["N"]) if item else 0
        return total

    for action, fields in (("complete", {"result": {"rows": 1}}),
                           ("fail", {"error": {"code": "invalid_input", "message": "no"}})):
        job_id = submit(http)
        assert http.post("/v1/jobs", {"service": "report"}).status_code == 429
        c = claimed(http)
        assert c["jobId"] == job_id and slots() == 1
        done = report(http, job_id, action, c["leaseToken"], **fields)
        assert done.status_code == 200, done.body
        assert job(http, job_id)["status"] in ("succeeded", "failed") and slots() == 0
