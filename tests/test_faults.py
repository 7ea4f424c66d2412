"""Fault matrix: a failure injected at each step of the submit, worker and callback paths
(DynamoDB and S3 writes, SQS sends, a crashing handler, a Lambda killed mid-job, a receiver
that is down, slow or redirecting). Every job must end in the right terminal state with its
webhook delivered as exactly one event (retries repeat the same webhook-id and body), and
nothing may be left in a queue or DLQ that should not be there.

AWS failures come from botocore's own event system (`before-call` handlers raising the
ClientError the SDK would raise after its retries); time is compressed: in-flight messages
come back after 1 s, and a requested delay moves the worker's clock forward instead."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from standardwebhooks import Webhook

from localrunner.receiver import Receiver
from tests.conftest import SECRET_A, body

TENANT = "acme"
HANDLERS = {"jobs": "run_jobs", "jobs_dlq": "fail_dead_jobs", "callbacks": "deliver_callbacks",
            "callbacks_dlq": "fail_dead_callbacks"}
QUEUES = tuple(HANDLERS)


# -- injecting AWS failures ------------------------------------------------------------------

class Faults:
    """Arms `before-call` handlers that raise a ClientError for matching calls."""

    def __init__(self) -> None:
        self.fired: Counter[str] = Counter()

    def inject(self, client: Any, operation: str, name: str,
               match: Callable[[dict[str, Any]], bool] = lambda call: True, times: int = 1,
               code: str = "InternalServerError") -> None:
        service = client.meta.service_model.service_name
        left = {"n": times}

        def handler(params: dict[str, Any], **_: Any) -> None:
            call = {"url": params.get("url", ""), "body": {}}
            raw = params.get("body")
            if isinstance(raw, bytes | str) and raw and service in ("dynamodb", "sqs"):
                call["body"] = json.loads(raw)
            if left["n"] > 0 and match(call):
                left["n"] -= 1
                self.fired[name] += 1
                raise ClientError({"Error": {"Code": code, "Message": f"injected: {name}"},
                                   "ResponseMetadata": {"HTTPStatusCode": 500}}, operation)

        client.meta.events.register(f"before-call.{service}.{operation}", handler)


def update_matching(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda call: text in call["body"].get("UpdateExpression", "")


CLAIM = "leaseUntil = :until"           # store.claim
HEARTBEAT = "SET #a0 = :v0"             # store.heartbeat (progress, status variables)
FINISH = "completedAt = :now"           # store.finish (terminal write)
RECORD = "list_append"                  # store.record_delivery


# -- a webhook receiver that can be down, slow, or redirecting --------------------------------

class Hook(Receiver):
    """The shared receiver, with its requests as `posts` (headers, body)."""

    def __init__(self, script: list[Any] | None = None):
        super().__init__(script, path="/hooks?corr=faults")

    @property
    def posts(self) -> list[Any]:
        return [SimpleNamespace(headers=r["headers"], body=r["body"]) for r in self.requests]


# -- driving the queues the way Lambda would, with time compressed ----------------------------

class Killed(BaseException):
    """The Lambda was killed mid-job (timeout, out of memory): nothing after it runs."""


@dataclass
class Clock:
    offset: float = 0.0
    delays: list[tuple[str, int]] = field(default_factory=list)

    def now(self) -> float:
        return time.time() + self.offset


def pump(env: Any, kind: str) -> int:
    """One poll and one invocation; what the handler did not report failed is deleted. An
    exception (or a killed Lambda) leaves the whole batch to come back."""
    import app as app_module
    from localrunner.pollers import LambdaContext, run_batch

    messages = env.messages(kind)
    if not messages:
        return 0
    name = HANDLERS[kind]
    run_batch(env.rt.clients.sqs, env.queues[kind], env.arn(kind), "us-east-1", messages,
              app_module.app.handler_map[name], LambdaContext(name), catch=(Exception, Killed))
    return len(messages)


def depth(env: Any, kind: str) -> int:
    attrs = env.rt.clients.sqs.get_queue_attributes(QueueUrl=env.queues[kind], AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return sum(int(v) for v in attrs.values())


def settle(env: Any, job_id: str, on_round: Callable[[Any], None] | None = None,
           timeout: float = 20.0) -> Any:
    """Run the queues until the job ended, its webhook is settled and no message is left."""
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        for kind in QUEUES:
            pump(env, kind)
        job = env.rt.store.get(TENANT, job_id, 0)
        if on_round is not None:
            on_round(job)
        if (job is not None and job.terminal and job.callback_state in ("delivered", "failed")
                and not any(depth(env, k) for k in QUEUES)):
            return job
        time.sleep(0.1)
    raise AssertionError(f"not settled in {timeout}s: {job}; queues "
                         f"{[(k, depth(env, k)) for k in QUEUES]}")


@pytest.fixture
def faulty(env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Faults, Clock]]:
    env.settings(callback_retry_interval_seconds=1, callback_max_retries=3,
                 job_retry_base_seconds=1)
    sqs = env.rt.clients.sqs
    for kind in ("jobs", "callbacks"):
        sqs.set_queue_attributes(QueueUrl=env.queues[kind], Attributes={"VisibilityTimeout": "1"})
    clock = Clock()
    env.rt.worker.clock = clock.now
    real = env.rt.dispatcher.retry_later

    def compressed(queue_url: str, receipt_handle: str, seconds: int) -> None:
        clock.delays.append((queue_url.rsplit("/", 1)[-1], seconds))
        if queue_url in (env.queues["jobs"], env.queues["jobs_dlq"]):
            clock.offset += seconds  # the delay passes for the worker at once...
        real(queue_url, receipt_handle, min(seconds, 1))  # ...and the message is back in 1 s

    monkeypatch.setattr(env.rt.dispatcher, "retry_later", compressed)
    yield env, Faults(), clock


@pytest.fixture
def test_services() -> Iterator[None]:
    """`flaky` fails its first call; `dies` kills its Lambda on its first call; `doomed`
    (one attempt only) kills it every time."""
    from chalicelib import services
    from chalicelib.services import Service

    services.get("echo")
    calls: Counter[str] = Counter()

    def flaky(data: Any, ctx: Any) -> Any:
        calls[ctx.job_id] += 1
        if calls[ctx.job_id] == 1:
            raise RuntimeError("transient failure in the handler")
        return {"ok": True}

    def dies(data: Any, ctx: Any) -> Any:
        calls[ctx.job_id] += 1
        if calls[ctx.job_id] == 1:
            raise Killed()
        return {"ok": True}

    def doomed(data: Any, ctx: Any) -> Any:
        raise Killed()

    added = [services.register(Service(name=n, handler=h, description="fault test",
                                        timeout_seconds=30, max_attempts=m))
             for n, h, m in (("flaky", flaky, None), ("dies", dies, None), ("doomed", doomed, 1))]
    yield
    for s in added:
        services.unregister(s.name)


# -- the matrix ------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    arm: Callable[[Any, Faults], None] = lambda env, faults: None
    service: str = "echo"
    input: dict[str, Any] = field(default_factory=lambda: {"n": 1})
    status: str = "succeeded"
    attempts: int | None = 1
    error_code: str | None = None
    script: list[Any] = field(default_factory=lambda: [200])
    hook_up_after: int = 0          # failed attempts before the receiver starts listening
    hook_never_up: bool = False
    callback: str = "delivered"
    posts: int | None = 1
    callbacks_dlq: int = 0
    fault: str | None = None        # the injected fault that must have fired
    recorded: bool = True           # the attempts reach the job's delivery list


def _dynamo(env: Any) -> Any:
    return env.rt.clients.dynamodb


CASES = [
    Case("dynamodb-claim-write-fails", fault="claim",
         arm=lambda env, f: f.inject(_dynamo(env), "UpdateItem", "claim", update_matching(CLAIM))),
    Case("dynamodb-heartbeat-write-fails", fault="heartbeat", service="sleep",
         input={"seconds": 0.1, "steps": 2}, attempts=2,
         arm=lambda env, f: f.inject(_dynamo(env), "UpdateItem", "heartbeat",
                                     update_matching(HEARTBEAT))),
    Case("dynamodb-finish-write-fails", fault="finish", attempts=2,
         arm=lambda env, f: f.inject(_dynamo(env), "UpdateItem", "finish", update_matching(FINISH))),
    Case("s3-result-put-fails", fault="result", attempts=2,
         arm=lambda env, f: f.inject(env.rt.clients.s3, "PutObject", "result",
                                     lambda call: "/results/" in call["url"])),
    Case("sqs-callback-enqueue-fails", fault="enqueue",
         arm=lambda env, f: f.inject(env.rt.clients.sqs, "SendMessage", "enqueue",
                                     lambda call: call["body"].get("QueueUrl")
                                     == env.queues["callbacks"])),
    Case("dynamodb-claim-down-dead-lettered", fault="claim", status="failed", attempts=0,
         error_code="dead_lettered",
         arm=lambda env, f: (
             env.rt.clients.sqs.set_queue_attributes(QueueUrl=env.queues["jobs"], Attributes={
                 "RedrivePolicy": json.dumps({"deadLetterTargetArn": _arn(env, "jobs_dlq"),
                                              "maxReceiveCount": 3})}),
             f.inject(_dynamo(env), "UpdateItem", "claim", update_matching(CLAIM), times=1000))),
    Case("handler-raises-every-attempt", service="sleep",
         input={"seconds": 0, "steps": 1, "fail": True}, status="failed", attempts=3,
         error_code="handler_error"),
    Case("handler-raises-once", service="flaky", attempts=2),
    Case("lambda-killed-mid-job", service="dies", attempts=2),
    Case("lambda-killed-on-last-attempt", service="doomed", status="failed", attempts=1,
         error_code="attempts_exhausted"),
    Case("receiver-down-then-up", hook_up_after=2),
    Case("receiver-down-for-good", hook_never_up=True, callback="failed", posts=0),
    Case("receiver-slower-than-timeout", script=[("sleep", 1.5), 200], posts=2),
    Case("receiver-redirects", script=[302, 200], posts=2),
    Case("dynamodb-delivery-record-fails", fault="record", posts=2,
         arm=lambda env, f: f.inject(_dynamo(env), "UpdateItem", "record", update_matching(RECORD))),
    # Every attempt dies before it is recorded: the message is redriven to the callbacks DLQ,
    # whose consumer marks the webhook failed (issue 11: it stayed pending for ever).
    Case("dynamodb-delivery-record-down-dead-lettered", fault="record", callback="failed",
         posts=3, recorded=False,
         arm=lambda env, f: (
             env.rt.clients.sqs.set_queue_attributes(QueueUrl=env.queues["callbacks"], Attributes={
                 "RedrivePolicy": json.dumps({"deadLetterTargetArn": _arn(env, "callbacks_dlq"),
                                              "maxReceiveCount": 3})}),
             f.inject(_dynamo(env), "UpdateItem", "record", update_matching(RECORD), times=1000))),
    Case("sqs-webhook-retry-visibility-fails", fault="visibility", script=[500, 200], posts=2,
         arm=lambda env, f: f.inject(env.rt.clients.sqs, "ChangeMessageVisibility", "visibility",
                                     lambda call: call["body"].get("QueueUrl")
                                     == env.queues["callbacks"])),
]


def _arn(env: Any, kind: str) -> str:
    return env.rt.clients.sqs.get_queue_attributes(
        QueueUrl=env.queues[kind], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, faulty: Any, http: Any, test_services: None,
               monkeypatch: pytest.MonkeyPatch) -> None:
    env, faults, clock = faulty
    # A webhook attempt gives up after 0.5 s here instead of 10 s.
    monkeypatch.setattr(env.rt.deliverer, "timeout", 0.5)
    hook = Hook(case.script)
    if not case.hook_up_after and not case.hook_never_up:
        hook.start()
    try:
        resp = http.post("/v1/jobs", {"service": case.service, "input": case.input,
                                      "callbackUrl": hook.url})
        assert resp.status_code == 202, resp.body
        job_id = body(resp)["jobId"]
        case.arm(env, faults)

        def on_round(job: Any) -> None:
            if (case.hook_up_after and hook.server is None and job is not None
                    and job.callback_attempts >= case.hook_up_after):
                hook.start()

        job = settle(env, job_id, on_round)
    finally:
        hook.stop()

    if case.fault:
        assert faults.fired[case.fault] >= 1, "the fault was never injected"
    assert job.status == case.status, job
    if case.attempts is not None:
        assert job.attempts == case.attempts, job
    assert job.error_code == case.error_code, job
    resource = body(http.get(f"/v1/jobs/{job_id}"))
    assert resource["status"] == case.status
    assert resource["callback"]["state"] == case.callback

    # The webhook: one event, whatever the number of attempts.
    ids = {p.headers.get("webhook-id") for p in hook.posts}
    bodies = {p.body for p in hook.posts}
    assert ids <= {f"evt_{job_id}"}, ids
    assert len(bodies) <= 1, "two different events for one job end"
    if case.posts is not None:
        assert len(hook.posts) == case.posts, [p.headers.get("webhook-id") for p in hook.posts]
    for p in hook.posts:
        Webhook(SECRET_A).verify(p.body, p.headers)
    if hook.posts:
        event = json.loads(hook.posts[0].body)
        assert event["data"]["jobId"] == job_id and event["data"]["status"] == case.status
    deliveries = body(http.get(f"/v1/jobs/{job_id}/deliveries"))["deliveries"]
    if case.callback == "delivered":
        assert deliveries[-1]["error"] is None and 200 <= deliveries[-1]["statusCode"] < 300
        assert all(d["error"] for d in deliveries[:-1])
    elif case.recorded:
        assert deliveries and all(d["error"] for d in deliveries)
    else:
        assert deliveries == [] and resource["callback"]["lastError"].startswith("dead_lettered")

    # Nothing left behind where it should not be.
    assert depth(env, "jobs") == 0 and depth(env, "callbacks") == 0
    assert depth(env, "jobs_dlq") == 0
    assert depth(env, "callbacks_dlq") == case.callbacks_dlq
    if job.result_key:
        assert env.rt.blobs.get(job.result_key) is not None


# -- submit: a failure answers 503 and leaves nothing half-created ----------------------------

def _job_items(env: Any) -> list[dict[str, Any]]:
    out = env.rt.clients.dynamodb.scan(TableName=env.rt.settings.table_name)
    return [i for i in out.get("Items", []) if i["pk"]["S"].startswith(f"T#{TENANT}#")]


def _inputs(env: Any) -> list[str]:
    out = env.rt.clients.s3.list_objects_v2(Bucket=env.rt.settings.bucket_name, Prefix="inputs/")
    return [o["Key"] for o in out.get("Contents", [])]


def _submit(http: Any, kind: str, run_id: str) -> Any:
    if kind == "json":
        return http.post("/v1/jobs", {"service": "echo", "input": {"n": 1}, "runId": run_id})
    document = ("id,name\n" + "".join(f"{i},row {i:06d}\n" for i in range(8000))).encode()
    assert len(document) > 64 * 1024  # stored in S3, not inline
    return http.request("POST", f"/v1/services/dataload/jobs?runId={run_id}", body=document,
                        headers={"Content-Type": "text/csv"})


def _assert_nothing_created(env: Any, http: Any) -> None:
    assert _job_items(env) == [], "a job or runId record was left behind"
    assert depth(env, "jobs") == 0, "a job message was left behind"
    assert _inputs(env) == [], "an uploaded document was left behind"
    assert body(http.get("/v1/jobs"))["jobs"] == []


@pytest.mark.parametrize("kind", ["json", "document"])
def test_submit_enqueue_failure_is_503_and_leaves_nothing(env: Any, http: Any, kind: str) -> None:
    faults = Faults()
    faults.inject(env.rt.clients.sqs, "SendMessage", "enqueue",
                  lambda call: call["body"].get("QueueUrl") == env.queues["jobs"])
    resp = _submit(http, kind, "run-enqueue-fails")
    assert resp.status_code == 503, resp.body
    assert resp.headers.get("Retry-After")
    assert body(resp)["error"]["code"] == "unavailable"
    assert faults.fired["enqueue"] == 1
    _assert_nothing_created(env, http)

    again = _submit(http, kind, "run-enqueue-fails")  # the client retries with its runId
    assert again.status_code == 202, again.body
    assert len(body(http.get("/v1/jobs"))["jobs"]) == 1
    assert depth(env, "jobs") == 1


@pytest.mark.parametrize("kind", ["json", "document"])
def test_submit_store_failure_is_503_and_leaves_nothing(env: Any, http: Any, kind: str) -> None:
    faults = Faults()
    faults.inject(env.rt.clients.dynamodb, "TransactWriteItems", "store")  # runId: a transaction
    resp = _submit(http, kind, "run-store-fails")
    assert resp.status_code == 503, resp.body
    assert resp.headers.get("Retry-After")
    assert faults.fired["store"] == 1
    _assert_nothing_created(env, http)

    again = _submit(http, kind, "run-store-fails")
    assert again.status_code == 202, again.body
    assert len(body(http.get("/v1/jobs"))["jobs"]) == 1
