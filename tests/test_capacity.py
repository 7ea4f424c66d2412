"""Back-pressure (503) holds under a burst: the jobs waiting are counted in DynamoDB with
a conditional counter (chalicelib/capacity.py), a place taken at submit and given back
when the job leaves the queue. In process on moto; the load test measures it live."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.capacity import SHARDS, shard_caps
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
