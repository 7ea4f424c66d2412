"""Back-pressure (503) holds under a burst: the jobs waiting are counted in DynamoDB with
a conditional counter (chalicelib/capacity.py), a place taken at submit and given back
when the job leaves the queue. In process on moto; the load test measures it live."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.capacity import LOOK_EVERY, SHARDS, shard_caps
from chalicelib.errors import ApiError
from tests.conftest import KEY_A, body


def submit_in_process(env: Any, payload: dict[str, Any] | None = None) -> int:
    """One submit as the route makes it: the HTTP status it would answer."""
    tenant = env.rt.tenants.authenticate(f"Bearer {KEY_A}")
    req = env.rt.api.parse_request(payload or {"service": "echo"})
    try:
        env.rt.api.submit(tenant, req, "https://jobs.example.com")
    except ApiError as err:
        return err.status
    return 202


def burst(env: Any, n: int) -> list[int]:
    env.rt.tenants.authenticate(f"Bearer {KEY_A}")  # the key cache is warm first
    start = threading.Barrier(n)
    codes: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        start.wait()
        code = submit_in_process(env)
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(codes) == n
    return codes


def counted(env: Any) -> int:
    db = env.rt.clients.dynamodb
    total = 0
    for shard in range(SHARDS):
        item = db.get_item(TableName=env.rt.settings.table_name,
                           Key={"pk": {"S": f"SYS#capacity#jobs#{shard}"}, "sk": {"S": "COUNT"}}
                           ).get("Item")
        total += int(item["n"]["N"]) if item else 0
    return total


@pytest.mark.parametrize("limit", [1, 3, 12])
def test_a_burst_never_passes_the_limit(env, limit):
    env.settings(max_queue_depth=limit)
    codes = burst(env, 30)
    assert codes.count(202) == limit, codes
    assert set(codes) == {202, 503}
    assert counted(env) == limit
    assert len(env.rt.store.list("acme", 0, status=None, service=None, limit=100,
                                 after=None).jobs) == limit


def test_a_job_that_starts_gives_its_place_back(env, http):
    env.settings(max_queue_depth=1)
    assert submit_in_process(env) == 202
    assert submit_in_process(env) == 503
    env.run_queue()
    assert counted(env) == 0
    assert submit_in_process(env) == 202


def test_a_job_canceled_while_queued_gives_its_place_back(env, http):
    env.settings(max_queue_depth=1)
    job_id = body(http.post("/v1/jobs", {"service": "echo"}))["jobId"]
    assert http.post("/v1/jobs", {"service": "echo"}).status_code == 503
    assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    assert counted(env) == 0
    assert http.post("/v1/jobs", {"service": "echo"}).status_code == 202


def test_a_submit_that_fails_after_reserving_gives_its_place_back(env, monkeypatch):
    from chalicelib.ports import QueueUnavailable

    env.settings(max_queue_depth=1)

    def no_queue(*_: Any, **__: Any) -> None:
        raise QueueUnavailable("ServiceUnavailable")

    monkeypatch.setattr(env.rt.dispatcher, "send_job", no_queue)
    assert submit_in_process(env) == 503
    assert counted(env) == 0


def test_a_retried_or_chained_job_moves_no_place(env, http):
    env.settings(max_queue_depth=2)
    resp = http.post("/v1/jobs", {"service": "echo", "chain": [{"service": "echo"},
                                                               {"service": "echo"}]})
    assert resp.status_code == 202
    assert counted(env) == 1
    env.run_queue()  # the job and the two chained after it run
    jobs = body(http.get("/v1/jobs"))["jobs"]
    assert len(jobs) == 3 and {j["status"] for j in jobs} == {"succeeded"}
    assert counted(env) == 0
    assert [submit_in_process(env) for _ in range(3)] == [202, 202, 503]


def test_a_lost_place_is_repaired_once_submits_are_refused(env):
    env.settings(max_queue_depth=1)
    capacity = env.rt.dispatcher.capacity
    now = [1000.0]
    capacity._clock = lambda: now[0]  # the repair's clock (private: no other handle)
    assert capacity.reserve("01LEAKEDJOBWHOSEWORKERDIED", 1) == (True, 0)  # never released
    assert submit_in_process(env) == 503  # first look: the queue holds nothing
    now[0] += 30
    assert submit_in_process(env) == 503  # too soon to call it lost (SQS figures lag)
    now[0] += 31
    assert submit_in_process(env) == 503  # second look, 61 s later: given back
    assert counted(env) == 0
    assert submit_in_process(env) == 202


def test_places_held_by_queued_messages_are_not_repaired_away(env):
    env.settings(max_queue_depth=2)
    capacity = env.rt.dispatcher.capacity
    now = [1000.0]
    capacity._clock = lambda: now[0]
    assert [submit_in_process(env) for _ in range(3)] == [202, 202, 503]
    now[0] += 120
    env.rt.dispatcher._depth = None  # a fresh look at the queue
    assert submit_in_process(env) == 503
    assert counted(env) == 2  # both messages are in the queue: nothing leaked


@pytest.mark.parametrize("limit", [0, 1, 2, 7, 8, 9, 20, 10_000, 10_001])
def test_shard_caps_add_up_to_the_limit(limit):
    caps = shard_caps(limit)
    assert sum(caps) == limit and 1 <= len(caps) <= SHARDS
    assert max(caps) - min(caps) <= 1


# -- the tenant quota (429): a slot per active job, taken at submit, given back at the end ----

def slots(env: Any, tenant: str = "acme") -> int:
    db = env.rt.clients.dynamodb
    total = 0
    for shard in range(SHARDS):
        item = db.get_item(TableName=env.rt.settings.table_name,
                           Key={"pk": {"S": f"SYS#active#{tenant}#{shard}"}, "sk": {"S": "COUNT"}}
                           ).get("Item")
        total += int(item["n"]["N"]) if item else 0
    return total


def submit_job(env: Any, payload: dict[str, Any]) -> str:
    tenant = env.rt.tenants.authenticate(f"Bearer {KEY_A}")
    return str(env.rt.api.submit(tenant, env.rt.api.parse_request(payload),
                                 "https://jobs.example.com").job.job_id)


@pytest.mark.parametrize("limit", [1, 3, 20])
def test_a_burst_never_passes_the_tenant_quota_and_reads_no_index(env, limit):
    env.settings(tenant_max_active=limit)
    queries: list[str] = []
    env.rt.clients.dynamodb.meta.events.register(
        "before-call.dynamodb.Query", lambda **_: queries.append("q"), unique_id="t-quota-q")
    codes = burst(env, 30)
    assert codes.count(202) == limit and set(codes) == {202, 429}, codes
    assert slots(env) == limit
    assert slots(env, "bobco") == 0
    # O(1): accepted submits read no index; refusals count the tenant's jobs at most once
    # (a container looks at most every LOOK_EVERY seconds)
    assert len(queries) <= SHARDS


def test_a_job_that_succeeds_gives_its_slot_back(env):
    env.settings(tenant_max_active=1)
    job_id = submit_job(env, {"service": "echo"})
    assert submit_in_process(env) == 429
    env.run_queue()
    assert env.rt.store.get("acme", job_id, env.rt.api.clock()).status == "succeeded"
    assert slots(env) == 0
    assert submit_in_process(env) == 202


def test_a_job_that_fails_gives_its_slot_back(env):
    env.settings(tenant_max_active=1, job_max_attempts=1)
    job_id = submit_job(env, {"service": "sleep", "input": {"seconds": 0, "steps": 1,
                                                            "fail": True}})
    assert submit_in_process(env) == 429
    env.run_queue()
    assert env.rt.store.get("acme", job_id, env.rt.api.clock()).status == "failed"
    assert slots(env) == 0
    assert submit_in_process(env) == 202


@pytest.mark.parametrize("running", [False, True])
def test_a_canceled_job_gives_its_slot_back_once(env, running):
    env.settings(tenant_max_active=1)
    job_id = submit_job(env, {"service": "echo"})
    if running:
        env.rt.store.claim("acme", job_id, "tok", 60, env.rt.api.clock())
    tenant = env.rt.tenants.authenticate(f"Bearer {KEY_A}")
    env.rt.api.cancel(tenant, job_id)
    assert slots(env) == 0
    with pytest.raises(ApiError):
        env.rt.api.cancel(tenant, job_id)  # already canceled: nothing given back twice
    assert submit_in_process(env) == 202
    assert slots(env) == 1
    env.run_queue()  # the canceled job's message comes back: nothing changes
    assert slots(env) == 0  # (the second job ran)


def test_a_dead_lettered_job_gives_its_slot_back(env):
    import json

    env.settings(tenant_max_active=1)
    job_id = submit_job(env, {"service": "echo"})
    env.rt.clients.sqs.send_message(QueueUrl=env.queues["jobs_dlq"],
                                    MessageBody=json.dumps({"tenant": "acme", "jobId": job_id}))
    assert env.run_queue("jobs_dlq") == 1
    assert env.rt.store.get("acme", job_id, env.rt.api.clock()).status == "failed"
    assert slots(env) == 0
    assert submit_in_process(env) == 202


def test_a_failed_submit_gives_its_slot_back(env, monkeypatch):
    from chalicelib.ports import QueueUnavailable

    env.settings(tenant_max_active=1)

    def no_queue(*_: Any, **__: Any) -> None:
        raise QueueUnavailable("ServiceUnavailable")

    monkeypatch.setattr(env.rt.dispatcher, "send_job", no_queue)
    assert submit_in_process(env) == 503
    assert slots(env) == 0
    env.settings(tenant_max_active=1, max_queue_depth=0)
    monkeypatch.undo()
    assert submit_in_process(env) == 503  # refused by the queue's bound: the slot back too
    assert slots(env) == 0


def test_slots_of_expired_or_lost_jobs_are_repaired_once_the_tenant_is_refused(env):
    import time

    env.settings(tenant_max_active=2)
    t = [time.time()]
    env.rt.api.clock = lambda: t[0]
    now = [1000.0]
    env.rt.store.slots._clock = lambda: now[0]  # the repair's clock (private: no other handle)
    submit_job(env, {"service": "echo"})
    assert env.rt.store.reserve_slot("acme", "01LOSTJOBWHOSERELEASEDIED", 2)[0] is not None
    assert submit_in_process(env) == 429
    assert slots(env) == 2
    now[0] += 61
    assert submit_in_process(env) == 202  # second look: the lost slot was given back
    assert slots(env) == 2
    # both jobs expire before anything ran them (expiresAt passed): their slots are found
    t[0] += env.rt.settings.job_ttl_seconds + 1
    assert submit_in_process(env) == 429  # counted a moment ago: no look yet
    now[0] += LOOK_EVERY
    assert submit_in_process(env) == 429  # first look
    now[0] += 30
    assert submit_in_process(env) == 429  # too soon: a submit may be between its two writes
    now[0] += 31
    assert submit_in_process(env) == 202
    assert slots(env) == 1


def test_a_chained_job_takes_no_slot(env):
    env.settings(tenant_max_active=1)
    submit_job(env, {"service": "echo", "chain": [{"service": "echo"}]})
    assert slots(env) == 1
    env.run_queue()
    assert slots(env) == 0


def test_a_refused_submit_costs_one_write_and_one_read_of_the_counters(env):
    env.settings(tenant_max_active=20)
    assert [submit_in_process(env) for _ in range(20)] == [202] * 20
    calls: list[str] = []
    for op in ("UpdateItem", "BatchGetItem", "Query"):
        env.rt.clients.dynamodb.meta.events.register(
            f"before-call.dynamodb.{op}", lambda op=op, **_: calls.append(op),
            unique_id=f"t-refused-{op}")
    env.rt.store.slots._looked["acme"] = env.rt.store.slots._clock()  # counted a moment ago
    assert submit_in_process(env) == 429
    assert calls == ["UpdateItem", "BatchGetItem"]
