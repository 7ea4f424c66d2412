"""The worker and the SQS handlers around it, in-process on moto: duplicate deliveries, dead
workers, retries, malformed messages, the jobs DLQ consumer, cancel while running, progress
throttling and partial batches."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.services import JOB_FUNCTION_TIMEOUT_SECONDS
from tests.conftest import body

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)

TENANT = "acme"


# -- helpers -------------------------------------------------------------------------------

@dataclass
class RetryCall:
    queue_url: str
    receipt_handle: str
    seconds: int


def submit(http: Any, service: str, data: Any = None, **extra: Any) -> str:
    payload = {"service": service, **extra}
    if data is not None:
        payload["input"] = data
    resp = http.post("/v1/jobs", payload)
    assert resp.status_code == 202, resp.body
    return body(resp)["jobId"]


def job(env: Any, job_id: str) -> Any:
    found = env.rt.store.get(TENANT, job_id, 0)
    assert found is not None
    return found


def counts(env: Any, kind: str = "jobs") -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attrs = env.rt.clients.sqs.get_queue_attributes(
        QueueUrl=env.queues[kind],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def reveal(env: Any, receipt_handle: str, kind: str = "jobs") -> None:
    """Make a hidden message visible again now (as if its visibility timeout ran out)."""
    env.rt.clients.sqs.change_message_visibility(
        QueueUrl=env.queues[kind], ReceiptHandle=receipt_handle, VisibilityTimeout=0)


def send(env: Any, message_body: str, kind: str = "jobs") -> None:
    env.rt.clients.sqs.send_message(QueueUrl=env.queues[kind], MessageBody=message_body)


def job_message(job_id: str, tenant: str = TENANT) -> str:
    return json.dumps({"tenant": tenant, "jobId": job_id})


def result_objects(env: Any, job_id: str) -> list[str]:
    out = env.rt.clients.s3.list_objects_v2(Bucket=env.rt.settings.bucket_name,
                                            Prefix=f"results/{TENANT}/{job_id}/")
    return [o["Key"] for o in out.get("Contents", [])]


@pytest.fixture
def retries(env: Any, monkeypatch: pytest.MonkeyPatch) -> list[RetryCall]:
    """Spy on Dispatcher.retry_later (the real call still happens)."""
    calls: list[RetryCall] = []
    real = env.rt.dispatcher.retry_later

    def spy(queue_url: str, receipt_handle: str, seconds: int) -> None:
        calls.append(RetryCall(queue_url, receipt_handle, seconds))
        real(queue_url, receipt_handle, seconds)

    monkeypatch.setattr(env.rt.dispatcher, "retry_later", spy)
    return calls


_open_gates: list[Gate] = []
_threads: list[threading.Thread] = []


@pytest.fixture(autouse=True)
def release_blocked_handlers(env: Any) -> Iterator[None]:
    """Whatever a test leaves blocked (it failed before letting its handler go) is let go and
    waited for here, before its AWS mock ends (hence `env`), so no handler thread outlives
    it and starves the tests after it."""
    yield
    for gate in _open_gates:
        gate.go.set()
    for t in _threads:
        t.join(30)
    _open_gates.clear()
    _threads.clear()


class Gate:
    """A handler that blocks until the test lets it go."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.go = threading.Event()
        self.calls = 0
        self.seen_canceled: list[bool] = []
        _open_gates.append(self)

    def wait_started(self) -> None:
        assert self.started.wait(10), "the handler never started"


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    _threads.append(t)
    return t, out


# -- duplicate delivery --------------------------------------------------------------------

@pytest.fixture
def counting(add_service: Any) -> list[str]:
    calls: list[str] = []

    def handler(data: Any, ctx: Any) -> Any:
        calls.append(ctx.job_id)
        return {"n": len(calls)}

    add_service("counting", handler)
    return calls


def test_same_message_twice_in_one_batch_runs_once(env, http, counting):
    job_id = submit(http, "counting", {})
    send(env, job_message(job_id))  # SQS delivered it twice
    msgs = env.messages()
    assert len(msgs) == 2
    out = env.deliver(msgs)
    assert out == {"batchItemFailures": []}
    assert counting == [job_id]
    assert job(env, job_id).status == "succeeded"
    assert job(env, job_id).attempts == 1
    assert counts(env) == (0, 0)


def test_redelivery_after_the_end_is_deleted_and_runs_nothing(env, http, counting, retries):
    job_id = submit(http, "counting", {})
    assert env.run_queue() == 1
    done = job(env, job_id)
    assert done.status == "succeeded"
    send(env, job_message(job_id))
    assert env.run_queue() == 1
    assert counting == [job_id]
    assert retries == []
    assert counts(env) == (0, 0)
    again = job(env, job_id)
    assert (again.status, again.completed_at, again.result_key) == \
        ("succeeded", done.completed_at, done.result_key)


def test_duplicate_while_the_lease_is_held_is_hidden_not_deleted(env, http, add_service, retries):
    gate = Gate()

    def handler(data: Any, ctx: Any) -> Any:
        gate.calls += 1
        gate.started.set()
        assert gate.go.wait(10)
        return {"ok": True}

    add_service("gated", handler, timeout_seconds=40)
    now = time.time()
    env.rt.worker.clock = lambda: now  # the worker's clock stands still: no wall-clock window
    job_id = submit(http, "gated", {})
    send(env, job_message(job_id))
    first = env.messages(max_n=1)
    assert len(first) == 1
    worker, answers = in_thread(lambda: env.deliver(first))
    gate.wait_started()
    running = job(env, job_id)
    assert running.status == "running" and running.lease_token

    # The duplicate arrives while the first run holds the lease.
    assert env.run_queue() == 1
    assert gate.calls == 1
    assert len(retries) == 1
    assert running.lease_until == now + 70  # the service's 40 s + the 30 s margin
    assert retries[0].seconds == 71  # back just after the lease lapses
    assert retries[0].queue_url == env.queues["jobs"]
    assert env.messages() == []  # hidden, not deleted
    assert counts(env) == (0, 2)

    gate.go.set()
    worker.join(10)
    assert answers == [{"batchItemFailures": []}]
    assert job(env, job_id).status == "succeeded"

    # The duplicate comes back after the lease: the job is over, so it is simply deleted.
    reveal(env, retries[0].receipt_handle)
    assert env.run_queue() == 1
    assert gate.calls == 1
    assert len(retries) == 1
    assert counts(env) == (0, 0)
    assert job(env, job_id).attempts == 1


# -- a worker dying mid-job ----------------------------------------------------------------

def test_dead_worker_lease_lapses_and_the_job_is_reclaimed(env, http, retries):
    job_id = submit(http, "echo", {"x": 1})
    now = time.time()
    env.rt.worker.clock = lambda: now
    env.rt.store.claim(TENANT, job_id, "dead-worker", 5, now)  # ... and it never finishes

    assert env.run_queue() == 1  # lease still held: come back later
    assert [r.seconds for r in retries] == [6]  # just after its 5 s
    assert job(env, job_id).status == "running"
    assert job(env, job_id).lease_token == "dead-worker"

    env.rt.worker.clock = lambda: now + 10  # the lease lapsed
    reveal(env, retries[0].receipt_handle)
    assert env.run_queue() == 1
    done = job(env, job_id)
    assert done.status == "succeeded", done
    assert done.attempts == 2
    assert done.lease_token is None and done.lease_until is None
    assert env.rt.blobs.get(done.result_key) == b'{"x":1}'
    assert counts(env) == (0, 0)


def test_dead_worker_on_the_last_attempt_fails_the_job(env, http, retries):
    env.settings(job_max_attempts=2)
    job_id = submit(http, "echo", {})
    now = time.time()
    env.rt.store.claim(TENANT, job_id, "dead-1", 100, now)
    env.rt.store.claim(TENANT, job_id, "dead-2", 100, now + 101)  # reclaimed, died again
    assert job(env, job_id).attempts == 2

    # Attempts used up but the lease still holds: wait for it, do not fail yet.
    env.rt.worker.clock = lambda: now + 150.5
    assert env.run_queue() == 1
    assert job(env, job_id).status == "running"
    assert [r.seconds for r in retries] == [51]  # just after the lease's end at now + 201
    reveal(env, retries[0].receipt_handle)

    env.rt.worker.clock = lambda: now + 202
    assert env.run_queue() == 1
    failed = job(env, job_id)
    assert failed.status == "failed"
    assert failed.error_code == "attempts_exhausted"
    assert failed.attempts == 2
    assert failed.result_key is None
    assert counts(env) == (0, 0)
    resource = body(http.get(f"/v1/jobs/{job_id}"))
    assert resource["error"]["code"] == "attempts_exhausted"


# -- handler failure and retry -------------------------------------------------------------

def test_failed_attempts_are_retried_with_backoff_then_fail(env, http, retries):
    env.settings(job_retry_base_seconds=100)  # long enough that no retry comes back unasked
    job_id = submit(http, "sleep", {"seconds": 0, "steps": 2, "fail": True})
    max_attempts = env.rt.settings.job_max_attempts
    assert max_attempts == 3
    for attempt in range(1, max_attempts):
        assert env.run_queue() == 1
        j = job(env, job_id)
        assert j.status == "queued", j
        assert j.attempts == attempt
        assert j.error_code == "handler_error"
        assert "fail=true" in j.error_message
        assert j.lease_token is None
        assert env.messages() == []  # hidden for the backoff
        reveal(env, retries[-1].receipt_handle)
    assert env.run_queue() == 1
    assert [r.seconds for r in retries] == [100, 200]  # the base, doubling (docs/design.md)
    j = job(env, job_id)
    assert j.status == "failed"
    assert j.error_code == "handler_error"
    assert j.attempts == max_attempts
    assert j.result_key is None
    assert counts(env) == (0, 0)
    assert counts(env, "jobs_dlq") == (0, 0)
    resource = body(http.get(f"/v1/jobs/{job_id}"))
    assert resource["status"] == "failed"
    assert resource["attempts"] == max_attempts
    assert resource["error"]["code"] == "handler_error"
    assert "SleepFailed" in resource["error"]["message"]


def test_the_resource_says_which_attempt_of_how_many_and_when_the_retry_comes(env, http,
                                                                             retries):
    """`maxAttempts` always; `retryAt` only while a failed attempt waits for its retry, at
    the time the message was hidden until (backoff 100 s, then 200 s)."""
    now = [1_767_225_600.0]  # 2026-01-01T00:00:00Z
    env.rt.api.clock = env.rt.view.clock = env.rt.worker.clock = lambda: now[0]
    env.settings(job_retry_base_seconds=100)
    job_id = submit(http, "sleep", {"seconds": 0, "steps": 2, "fail": True})
    fresh = body(http.get(f"/v1/jobs/{job_id}"))
    assert (fresh["attempts"], fresh["maxAttempts"]) == (0, 3) and "retryAt" not in fresh
    assert env.run_queue() == 1
    waiting = body(http.get(f"/v1/jobs/{job_id}"))
    assert (waiting["status"], waiting["attempts"], waiting["maxAttempts"]) == ("queued", 1, 3)
    assert waiting["retryAt"] == "2026-01-01T00:01:40.000Z"
    assert waiting["error"]["code"] == "handler_error"
    now[0] += 150  # the second attempt runs (late) and fails at 00:02:30
    reveal(env, retries[-1].receipt_handle)
    assert env.run_queue() == 1
    again = body(http.get(f"/v1/jobs/{job_id}"))
    assert (again["status"], again["attempts"]) == ("queued", 2)
    assert again["retryAt"] == "2026-01-01T00:05:50.000Z"
    reveal(env, retries[-1].receipt_handle)
    assert env.run_queue() == 1
    failed = body(http.get(f"/v1/jobs/{job_id}"))
    assert (failed["status"], failed["attempts"], failed["maxAttempts"]) == ("failed", 3, 3)
    assert "retryAt" not in failed
    assert [r.seconds for r in retries] == [100, 200]


def test_success_after_a_failed_attempt_clears_the_error(env, http, add_service, retries):
    calls: list[int] = []

    def flaky(data: Any, ctx: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient trouble")
        return {"ok": len(calls)}

    add_service("flaky", flaky)
    env.settings(job_retry_base_seconds=100)  # long enough that no retry comes back unasked
    job_id = submit(http, "flaky", {}, logLevel=1)
    assert env.run_queue() == 1
    j = job(env, job_id)
    assert (j.status, j.error_code) == ("queued", "handler_error")
    assert "transient trouble" in j.error_message
    assert retries[0].seconds == 100
    reveal(env, retries[0].receipt_handle)
    assert env.run_queue() == 1
    j = job(env, job_id)
    assert j.status == "succeeded"
    assert j.attempts == 2
    assert j.error_code is None and j.error_message is None
    resource = body(http.get(f"/v1/jobs/{job_id}"))
    assert "error" not in resource
    assert resource["resultUrl"]
    log = http.get(f"/v1/jobs/{job_id}/log").body
    log = log.decode() if isinstance(log, bytes) else log
    assert "attempt 2 of 3" in log and "transient trouble" in log


# -- malformed messages --------------------------------------------------------------------

BAD_BODIES = ["not json at all", '{"tenant": "acme"}', '{"jobId": "01ABC"}',
              '{"tenant": "acme", "jobId": 5}', "[1, 2, 3]", '"just a string"', "null",
              '{"tenant": "", "jobId": ""}']


def test_malformed_messages_go_to_the_dlq_and_never_fail_the_good_one(env, http):
    job_id = submit(http, "echo", {"good": True})
    for bad in BAD_BODIES:
        send(env, bad)
    msgs = env.messages() + env.messages()
    assert len(msgs) == len(BAD_BODIES) + 1
    out = env.deliver(msgs)
    assert out == {"batchItemFailures": []}
    assert job(env, job_id).status == "succeeded"
    assert counts(env) == (0, 0)
    dead = env.messages("jobs_dlq") + env.messages("jobs_dlq")
    assert sorted(m["Body"] for m in dead) == sorted(BAD_BODIES)
    for m in dead:
        reveal(env, m["ReceiptHandle"], "jobs_dlq")

    # The DLQ consumer keeps them there for an operator (hidden, not deleted).
    env.run_queue("jobs_dlq")
    assert counts(env, "jobs_dlq") == (0, len(BAD_BODIES))


def test_malformed_message_first_in_the_batch(env, http):
    job_id = submit(http, "echo", {})
    good = env.messages()
    send(env, "{oops")
    bad = env.messages()
    out = env.deliver(bad + good)
    assert out == {"batchItemFailures": []}
    assert job(env, job_id).status == "succeeded"
    assert [m["Body"] for m in env.messages("jobs_dlq")] == ["{oops"]


def test_message_for_an_unknown_job_is_dropped(env, http):
    send(env, job_message("01JD5Z3K8Q2V7XG4M9N6R1T0WA"))
    send(env, job_message("01JD5Z3K8Q2V7XG4M9N6R1T0WA", tenant="nobody"))
    assert env.run_queue() == 2
    assert counts(env) == (0, 0)
    assert counts(env, "jobs_dlq") == (0, 0)


# -- the jobs DLQ consumer -----------------------------------------------------------------

def test_dlq_fails_a_queued_job(env, http):
    job_id = submit(http, "echo", {})
    send(env, job_message(job_id), "jobs_dlq")
    assert env.run_queue("jobs_dlq") == 1
    j = job(env, job_id)
    assert j.status == "failed"
    assert j.error_code == "dead_lettered"
    assert j.completed_at is not None
    assert counts(env, "jobs_dlq") == (0, 0)
    # Its original message coming back later changes nothing either.
    assert env.run_queue() == 1
    assert job(env, job_id).status == "failed"
    assert job(env, job_id).result_key is None


def test_dlq_leaves_a_terminal_job_alone(env, http):
    job_id = submit(http, "echo", {})
    env.run_queue()
    before = job(env, job_id)
    assert before.status == "succeeded"
    send(env, job_message(job_id), "jobs_dlq")
    assert env.run_queue("jobs_dlq") == 1
    after = job(env, job_id)
    assert after == before
    assert counts(env, "jobs_dlq") == (0, 0)


def test_dlq_waits_for_a_running_job_with_a_live_lease(env, http, retries):
    job_id = submit(http, "echo", {})
    now = time.time()
    env.rt.worker.clock = lambda: now  # no wall-clock window
    env.rt.store.claim(TENANT, job_id, "live-worker", 100, now)
    send(env, job_message(job_id), "jobs_dlq")
    assert env.run_queue("jobs_dlq") == 1
    j = job(env, job_id)
    assert j.status == "running" and j.lease_token == "live-worker"
    assert counts(env, "jobs_dlq") == (0, 1)  # still there, hidden until the lease ends
    assert [r.seconds for r in retries] == [101]
    assert retries[0].queue_url == env.queues["jobs_dlq"]


def test_dlq_fails_a_running_job_whose_lease_lapsed(env, http):
    job_id = submit(http, "echo", {})
    env.rt.store.claim(TENANT, job_id, "dead-worker", 10, time.time() - 100)
    send(env, job_message(job_id), "jobs_dlq")
    assert env.run_queue("jobs_dlq") == 1
    j = job(env, job_id)
    assert (j.status, j.error_code) == ("failed", "dead_lettered")
    assert j.lease_token is None
    assert counts(env, "jobs_dlq") == (0, 0)


# -- cancel while running ------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["check", "progress", "ignore"])
def test_cancel_while_running(env, http, add_service, monkeypatch, mode):
    """The handler sees the cancel (ctx.canceled, or progress raising Canceled) or ignores it
    and returns late: in every case the job stays canceled and no result object is left."""
    from chalicelib import worker
    from chalicelib.services import Canceled

    monkeypatch.setattr(worker, "CANCEL_CHECK_INTERVAL", 0.0)
    ticks = Ticks()
    env.rt.worker.ticks = ticks
    gate = Gate()

    def handler(data: Any, ctx: Any) -> Any:
        gate.calls += 1
        ctx.progress(10, "started")
        gate.started.set()
        assert gate.go.wait(10)
        if mode == "check":
            gate.seen_canceled.append(ctx.canceled)
            if ctx.canceled:
                raise Canceled()
        elif mode == "progress":
            ticks.now += 1.1  # past the progress throttle, so this write happens
            ctx.progress(50, "halfway")
        return {"late": True}

    add_service("gated", handler)
    job_id = submit(http, "gated", {})
    msgs = env.messages()
    t, answers = in_thread(lambda: env.deliver(msgs))
    gate.wait_started()
    resp = http.post(f"/v1/jobs/{job_id}/cancel")
    assert resp.status_code == 202, resp.body
    assert body(resp)["status"] == "canceled"
    gate.go.set()
    t.join(15)
    assert not t.is_alive()
    assert answers == [{"batchItemFailures": []}]
    if mode == "check":
        assert gate.seen_canceled == [True]
    j = job(env, job_id)
    assert j.status == "canceled"
    assert j.result_key is None
    assert j.progress_percent != 100
    assert result_objects(env, job_id) == []
    assert counts(env) == (0, 0)
    resource = body(http.get(f"/v1/jobs/{job_id}"))
    assert resource["status"] == "canceled" and "resultUrl" not in resource
    assert http.get(f"/v1/jobs/{job_id}/result").status_code == 404
    assert gate.calls == 1


def test_cancel_while_running_sleep_service(env, http, monkeypatch):
    """The built-in sleep handler stops early when canceled."""
    from chalicelib import worker

    monkeypatch.setattr(worker, "CANCEL_CHECK_INTERVAL", 0.0)
    job_id = submit(http, "sleep", {"seconds": 20, "steps": 100})
    msgs = env.messages()
    t, answers = in_thread(lambda: env.deliver(msgs))
    deadline = time.time() + 10
    while job(env, job_id).status != "running" and time.time() < deadline:
        time.sleep(0.05)
    assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    t.join(15)
    assert not t.is_alive()  # the 20 s job stopped early (a generous bound: no race)
    assert answers == [{"batchItemFailures": []}]
    assert job(env, job_id).status == "canceled"
    assert result_objects(env, job_id) == []


# -- progress throttling -------------------------------------------------------------------

class Ticks:
    """The worker's monotonic clock, moved by the test (no wall-clock race)."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_progress_writes_are_throttled(env, http, add_service, monkeypatch):
    """100 progress calls a quarter of a second apart (on the worker's clock): a write on
    the first call, then one per second of that clock: calls 1, 5, 9, ..., 97."""
    ticks = Ticks()
    env.rt.worker.ticks = ticks
    written: list[float] = []
    real = env.rt.store.heartbeat

    def heartbeat(tenant: str, job_id: str, token: str, values: dict[str, Any]) -> Any:
        written.append(values["progressPercent"])
        return real(tenant, job_id, token, values)

    monkeypatch.setattr(env.rt.store, "heartbeat", heartbeat)

    def chatty(data: Any, ctx: Any) -> Any:
        for i in range(1, 101):
            ctx.progress(i, f"tick {i}/100")
            ticks.now += 0.25
        return {"ok": True}

    add_service("chatty", chatty)
    job_id = submit(http, "chatty", {})
    assert env.run_queue() == 1
    assert written == [float(i) for i in range(1, 101, 4)], written
    j = job(env, job_id)
    assert j.status == "succeeded"
    assert j.progress_percent == 100
    assert j.progress_message == "tick 100/100"
    resource = body(http.get(f"/v1/jobs/{job_id}"))
    assert resource["progress"] == {"percent": 100.0, "message": "tick 100/100"}


def test_status_variables_survive_throttling(env, http):
    job_id = submit(http, "sleep", {"seconds": 0, "steps": 50})
    assert env.run_queue() == 1
    resource = body(http.get(f"/v1/jobs/{job_id}"))
    assert resource["status"] == "succeeded"
    assert resource["variables"] == {"STEP": "50"}
    assert resource["progress"] == {"percent": 100.0, "message": "step 50/50"}


# -- partially failing batches -------------------------------------------------------------

def test_partial_batch_deletes_successes_and_keeps_failures(env, http, monkeypatch, retries):
    from chalicelib.batch import BatchFailed

    good = submit(http, "echo", {"good": 1})
    held = submit(http, "echo", {"held": 1})
    crash = submit(http, "echo", {"crash": 1})
    good2 = submit(http, "echo", {"good": 2})
    env.rt.store.claim(TENANT, held, "other-worker", 100, time.time())
    real = env.rt.worker.process

    def process(message_body: str, time_left: float = JOB_FUNCTION_TIMEOUT_SECONDS) -> None:
        if crash in message_body:
            raise RuntimeError("boom")
        real(message_body, time_left)

    monkeypatch.setattr(env.rt.worker, "process", process)
    msgs = env.messages()
    assert len(msgs) == 4
    by_job = {json.loads(m["Body"])["jobId"]: m for m in msgs}

    out = env.invoke(msgs)
    assert isinstance(out, BatchFailed), out
    assert sorted(out.failures) == sorted([by_job[held]["MessageId"], by_job[crash]["MessageId"]])
    assert job(env, good).status == "succeeded"
    assert job(env, good2).status == "succeeded"
    assert job(env, crash).status == "queued"
    assert job(env, held).status == "running"
    # The handler deleted the successes itself; the two failures are still in the queue.
    assert counts(env) == (0, 2)
    assert [r.receipt_handle for r in retries] == [by_job[held]["ReceiptHandle"]]
    for jid in (held, crash):
        reveal(env, by_job[jid]["ReceiptHandle"])
    left = env.messages()
    assert sorted(json.loads(m["Body"])["jobId"] for m in left) == sorted([held, crash])

    # Once the crash is gone, the record runs normally.
    monkeypatch.setattr(env.rt.worker, "process", real)
    for m in left:
        reveal(env, m["ReceiptHandle"])
    env.run_queue()
    assert job(env, crash).status == "succeeded"


def test_batch_where_every_record_fails_raises(env, http, monkeypatch):
    from chalicelib.batch import BatchFailed

    a, b = submit(http, "echo", {}), submit(http, "echo", {})

    def process(message_body: str, time_left: float = JOB_FUNCTION_TIMEOUT_SECONDS) -> None:
        raise RuntimeError("down")

    monkeypatch.setattr(env.rt.worker, "process", process)
    msgs = env.messages()
    out = env.invoke(msgs)
    assert isinstance(out, BatchFailed)
    assert len(out.failures) == 2
    assert counts(env) == (0, 2)
    assert job(env, a).status == job(env, b).status == "queued"


# -- regressions: bugs found while writing these tests ----------------------------------

class FakeLambdaContext:
    """Lambda's context with a remaining time the test moves (no wall clock)."""

    def __init__(self, seconds: float):
        self.left = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.left * 1000)


def test_time_left_is_measured_per_record(env, http, add_service, retries):
    import app as app_module
    from chalicelib.batch import BatchFailed
    from chalicelib.services import END_MARGIN_SECONDS

    context = FakeLambdaContext(END_MARGIN_SECONDS + 30 + 20)  # one 30 s job, and 20 s more
    env.rt.worker.ticks = Ticks()  # the worker's clock stands still: no wall-clock bound
    remaining: list[float] = []

    def slow(data: Any, ctx: Any) -> Any:
        remaining.append(ctx.remaining_seconds())
        context.left -= 25  # this job used 25 s of the invocation
        return {}

    add_service("long", slow, timeout_seconds=30)
    ids = {submit(http, "long", {}), submit(http, "long", {})}
    msgs = env.messages()
    assert len(msgs) == 2
    with pytest.raises(BatchFailed) as failed:
        app_module.app.handler_map["run_jobs"](env.event(msgs), context)
    out = failed.value
    # The second record starts with 25 s left: too little for a 30 s service, so it goes
    # back to the queue at once, without using an attempt.
    assert len(out.failures) == 1, out.failures
    assert remaining == [30.0]
    states = {j: job(env, j) for j in ids}
    assert sorted((s.status, s.attempts) for s in states.values()) == [
        ("queued", 0), ("succeeded", 1)]
    back = next(m for m in msgs if m["MessageId"] in out.failures)
    assert [(r.receipt_handle, r.seconds) for r in retries] == [(back["ReceiptHandle"], 0)]


def test_late_result_leaves_no_log_object_behind(env, http, add_service):
    gate = Gate()

    def chatty(data: Any, ctx: Any) -> Any:
        for i in range(300):
            ctx.log(f"line {i:04d} " + "x" * 40, level=1)  # > inline_log_limit
        gate.started.set()
        assert gate.go.wait(10)
        return {"late": True}

    add_service("gated", chatty)
    job_id = submit(http, "gated", {})
    msgs = env.messages()
    t, _ = in_thread(lambda: env.deliver(msgs))
    gate.wait_started()
    assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    gate.go.set()
    t.join(10)
    assert job(env, job_id).status == "canceled"
    assert result_objects(env, job_id) == []
    logs = env.rt.clients.s3.list_objects_v2(Bucket=env.rt.settings.bucket_name,
                                             Prefix=f"logs/{TENANT}/{job_id}/")
    assert logs.get("Contents", []) == []


def test_canceled_raised_without_a_cancel_does_not_strand_the_job(env, http, add_service):
    from chalicelib.services import Canceled

    def quitter(data: Any, ctx: Any) -> Any:
        raise Canceled()  # e.g. after a stale (eventually consistent) read in ctx.canceled

    add_service("quitter", quitter)
    job_id = submit(http, "quitter", {})
    env.run_queue()
    j = job(env, job_id)
    # Either the job ended, or its message is still around to finish it after the lease.
    assert j.status != "running" or counts(env) != (0, 0), (j.status, counts(env))
