"""Webhooks: signed (checked with the independent `standardwebhooks` verifier), retried on
the schedule, recorded, never lost across a crash, never two different events."""

from __future__ import annotations

import json
import random
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from chalicelib import webhooks
from chalicelib.urls import check_callback_url
from localrunner.receiver import Receiver
from tests.conftest import KEY_B, SECRET_A, body

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)


def submit(http, url, service="echo", input=None, key=None, **extra):  # noqa: A002
    payload = {"service": service, "input": input or {"n": 1}, "callbackUrl": url, **extra}
    kw = {"key": key} if key else {}
    resp = http.post("/v1/jobs", payload, **kw)
    assert resp.status_code == 202, resp.body
    return body(resp)["jobId"]


def deliver_until(env, predicate, timeout=20.0):
    """Run the callbacks queue (as Lambda would) until `predicate()` holds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        env.run_queue("callbacks")
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached")


@pytest.fixture
def fast(env):
    env.settings(callback_retry_interval_seconds=1, callback_max_retries=5)
    return env


def test_delivery_is_signed_per_standard_webhooks(fast, http):
    with Receiver([200]) as rx:
        job_id = submit(http, rx.url)
        fast.run_queue("jobs")
        deliver_until(fast, lambda: len(rx.requests) == 1)
    req = rx.requests[0]
    payload = Webhook(SECRET_A).verify(req["body"], req["headers"])
    assert payload["type"] == "job.finished"
    assert payload["data"]["jobId"] == job_id and payload["data"]["status"] == "succeeded"
    assert "input" not in payload["data"] and "callback" not in payload["data"]
    assert req["path"] == "/hooks?corr=abc"  # the client's correlation id survives
    assert "." not in req["headers"]["webhook-id"]
    assert req["body"] == json.dumps(json.loads(req["body"]), separators=(",", ":"))
    assert abs(int(req["headers"]["webhook-timestamp"]) - time.time()) < 30
    with pytest.raises(WebhookVerificationError):  # another tenant's secret must not verify
        Webhook("whsec_" + "A" * 32).verify(req["body"], req["headers"])
    job = body(http.get(f"/v1/jobs/{job_id}"))
    assert job["callback"]["state"] == "delivered" and job["callback"]["attempts"] == 1


@pytest.mark.moto  # counts the delays through a botocore event hook
def test_failing_receiver_is_retried_with_one_event_and_every_attempt_recorded(fast, http):
    hidden: list[int] = []  # the delays the handler applied (not the receiver's gaps)
    fast.rt.clients.sqs.meta.events.register(
        "before-parameter-build.sqs.ChangeMessageVisibility",
        lambda params, **_: hidden.append(params["VisibilityTimeout"]), unique_id="wh-delays")
    with Receiver([500, 503, 200]) as rx:
        job_id = submit(http, rx.url)
        fast.run_queue("jobs")
        deliver_until(fast, lambda: len(rx.requests) == 3)
    ids = {r["headers"]["webhook-id"] for r in rx.requests}
    bodies = {r["body"] for r in rx.requests}
    assert len(ids) == 1 and len(bodies) == 1, "retries must repeat the very same event"
    for r in rx.requests:  # each retry is signed anew, and verifies
        Webhook(SECRET_A).verify(r["body"], r["headers"])
    assert len(hidden) == 2 and 1 <= hidden[0] <= 2 and 2 <= hidden[1] <= 3, hidden  # 1 s, 2 s
    deliveries = body(http.get(f"/v1/jobs/{job_id}/deliveries"))["deliveries"]
    assert [d["attempt"] for d in deliveries] == [1, 2, 3]
    assert [d["statusCode"] for d in deliveries] == [500, 503, 200]
    assert deliveries[0]["error"] == "HTTP 500" and deliveries[2]["error"] is None
    assert all(d["durationMs"] >= 0 and d["at"].endswith("Z") for d in deliveries)
    job = body(http.get(f"/v1/jobs/{job_id}"))
    assert job["callback"] == {**job["callback"], "state": "delivered", "attempts": 3}


@pytest.mark.slow  # waits on the wall clock (a retry interval, a deadline)
def test_gives_up_after_max_retries_and_is_done_with_the_message(fast, http):
    fast.settings(callback_max_retries=2)
    with Receiver([500]) as rx:
        job_id = submit(http, rx.url)
        fast.run_queue("jobs")
        deliver_until(fast, lambda: body(http.get(f"/v1/jobs/{job_id}"))["callback"]["state"]
                      == "failed")
        assert len(rx.requests) == 3  # the first attempt and two retries
    # Every attempt is on the job: the message is deleted, as a job's is after its last
    # attempt (the DLQ is for messages that could not be processed).
    assert fast.messages("callbacks_dlq") == []
    assert fast.messages("callbacks", max_n=10) == []
    job = body(http.get(f"/v1/jobs/{job_id}"))
    assert job["callback"]["lastError"] == "HTTP 500"


def test_tenant_policy_overrides_the_deployment_default(fast, http):
    from chalicelib.tenants import Tenant

    fast.rt.tenants.put_tenant(Tenant(name="bobco", webhook_secrets=["whsec_" + "B" * 32],
                                      callback_max_retries=0))
    with Receiver([500]) as rx:
        job_id = submit(http, rx.url, key=KEY_B)
        fast.run_queue("jobs")
        deliver_until(fast, lambda: body(http.get(f"/v1/jobs/{job_id}", key=KEY_B))
                      ["callback"]["state"] == "failed")
        assert len(rx.requests) == 1


@pytest.mark.slow  # waits on the wall clock (a retry interval, a deadline)
def test_redirect_is_a_failed_attempt_and_is_not_followed(fast, http):
    with Receiver([302, 200]) as rx:
        job_id = submit(http, rx.url)
        fast.run_queue("jobs")
        deliver_until(fast, lambda: len(rx.requests) == 2)
    deliveries = body(http.get(f"/v1/jobs/{job_id}/deliveries"))["deliveries"]
    assert deliveries[0]["statusCode"] == 302 and "redirect" in deliveries[0]["error"]


@pytest.mark.slow  # waits on the wall clock (a retry interval, a deadline)
def test_receiver_down_then_up(fast, http):
    rx = Receiver([200])  # its port is fixed, but nothing listens yet
    job_id = submit(http, rx.url)
    fast.run_queue("jobs")
    fast.run_queue("callbacks")
    job = body(http.get(f"/v1/jobs/{job_id}"))
    assert job["callback"]["state"] == "pending" and job["callback"]["attempts"] == 1
    first = body(http.get(f"/v1/jobs/{job_id}/deliveries"))["deliveries"][0]
    assert first["statusCode"] is None and first["error"]
    with rx:  # the receiver comes up; the retry (its message back after the delay) lands
        (msg,) = _wait_for_message(fast, "callbacks")
        fast.deliver([msg], "callbacks")
    assert len(rx.requests) == 1
    Webhook(SECRET_A).verify(rx.requests[0]["body"], rx.requests[0]["headers"])
    job = body(http.get(f"/v1/jobs/{job_id}"))
    assert job["callback"]["state"] == "delivered" and job["callback"]["attempts"] == 2
    second = body(http.get(f"/v1/jobs/{job_id}/deliveries"))["deliveries"][1]
    assert second["statusCode"] == 200 and second["error"] is None


def _wait_for_message(env, kind, timeout=30.0):
    """The next message of a queue, once its visibility delay has passed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        msgs = env.messages(kind, wait=1, max_n=1)
        if msgs:
            return msgs
    raise AssertionError(f"no {kind} message within {timeout}s")


def test_slow_receiver_times_out():
    with Receiver([("sleep", 2)]) as rx:
        attempt = webhooks.post(rx.url, {}, "{}", allow_private=True, timeout=0.5)
    assert not attempt.ok and attempt.status_code is None and "timeout" in attempt.error


# interval 60: 60 s, 120 s, 240 s, ... ±10 %, never over 12 h (docs/api.md), as literals
RETRY_BOUNDS_60 = {1: (54, 66), 2: (108, 132), 3: (216, 264), 4: (432, 528), 5: (864, 1056),
                   6: (1728, 2112), 7: (3456, 4224), 8: (6912, 8448), 9: (13_824, 16_896),
                   10: (27_648, 33_792), 11: (43_200, 43_200), 12: (43_200, 43_200)}


def test_retry_schedule_is_exponential_with_bounded_jitter():
    rng = random.Random(7)
    for n, (lo, hi) in RETRY_BOUNDS_60.items():
        seen = {webhooks.retry_delay(n, 60, rng) for _ in range(50)}
        assert lo <= min(seen) and max(seen) <= hi, (n, sorted(seen))
        if lo < hi:
            assert len(seen) > 1, (n, seen)  # jittered, not a constant
    assert webhooks.retry_delay(1, 0) == 1
    assert {webhooks.retry_delay(1, 1, random.Random(i)) for i in range(30)} <= {1, 2}


@pytest.mark.slow  # waits on the wall clock (a retry interval, a deadline)
def test_crash_before_the_callback_is_queued_still_delivers_once(fast, http, monkeypatch):
    fast.rt.clients.sqs.set_queue_attributes(QueueUrl=fast.queues["jobs"],
                                             Attributes={"VisibilityTimeout": "1"})
    with Receiver([200]) as rx:
        job_id = submit(http, rx.url)
        real = fast.rt.dispatcher.send_callback
        calls = {"n": 0}

        def crash_once(*a, **kw):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("Lambda died between the terminal write and the enqueue")
            return real(*a, **kw)

        monkeypatch.setattr(fast.rt.dispatcher, "send_callback", crash_once)
        fast.run_queue("jobs")  # first delivery crashes after the terminal write
        assert body(http.get(f"/v1/jobs/{job_id}"))["status"] == "succeeded"
        assert fast.messages("callbacks") == []
        _redeliver_job_messages(fast)  # the job message comes back after its visibility
        deliver_until(fast, lambda: len(rx.requests) >= 1)
        fast.run_queue("jobs")
        fast.run_queue("callbacks")
    assert len({r["body"] for r in rx.requests}) == 1
    assert len({r["headers"]["webhook-id"] for r in rx.requests}) == 1


def _redeliver_job_messages(env):
    """Wait for the in-flight job message to come back and deliver it."""
    deadline = time.time() + 10
    while time.time() < deadline:
        if env.run_queue("jobs"):
            return
        time.sleep(0.5)
    raise AssertionError("the job message never came back")


def test_cancel_sends_a_canceled_event(fast, http):
    with Receiver([200]) as rx:
        job_id = submit(http, rx.url, service="sleep", input={"seconds": 5})
        assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        deliver_until(fast, lambda: len(rx.requests) == 1)
        fast.run_queue("jobs")  # the job's own message finds it canceled: no second event
        fast.run_queue("callbacks")
    assert len(rx.requests) == 1
    assert json.loads(rx.requests[0]["body"])["data"]["status"] == "canceled"


def test_manual_redelivery(fast, http):
    with Receiver([200]) as rx:
        job_id = submit(http, rx.url)
        fast.run_queue("jobs")
        deliver_until(fast, lambda: len(rx.requests) == 1)
        resp = http.post(f"/v1/jobs/{job_id}/deliveries")
        assert resp.status_code == 202
        deliver_until(fast, lambda: len(rx.requests) == 2)
    assert rx.requests[0]["body"] == rx.requests[1]["body"]
    assert rx.requests[0]["headers"]["webhook-id"] == rx.requests[1]["headers"]["webhook-id"]
    assert len(body(http.get(f"/v1/jobs/{job_id}/deliveries"))["deliveries"]) == 2


def test_redelivery_needs_a_callback_and_a_finished_job(fast, http):
    resp = http.post("/v1/jobs", {"service": "echo", "input": {}})
    job_id = body(resp)["jobId"]
    assert http.post(f"/v1/jobs/{job_id}/deliveries").status_code == 409
    with Receiver([200]) as rx:
        queued = submit(http, rx.url)
        r = http.post(f"/v1/jobs/{queued}/deliveries")
        assert r.status_code == 409 and body(r)["error"]["code"] == "job_not_finished"
    assert http.get("/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/deliveries").status_code == 404


FORBIDDEN = [
    "https://127.0.0.1/", "https://127.9.9.9/", "https://2130706433/", "https://0x7f000001/",
    "https://0177.0.0.1/", "https://127.1/", "https://0x7f.1/", "https://0.0.0.0/", "https://0/",
    "https://10.0.0.1/", "https://172.16.5.4/", "https://172.31.255.255/", "https://192.168.1.1/",
    "https://169.254.169.254/latest/meta-data/", "https://169.254.0.1/", "https://100.64.0.1/",
    "https://100.127.255.254/", "https://224.0.0.1/", "https://239.255.255.250/",
    "https://255.255.255.255/", "https://[::1]/", "https://[::]/", "https://[fc00::1]/",
    "https://[fd12:3456::1]/", "https://[fe80::1]/", "https://[ff02::1]/",
    "https://[::ffff:127.0.0.1]/", "https://[::ffff:a00:1]/", "https://[64:ff9b::a00:1]/",
    "https://[64:ff9b::808:808]/", "https://[fd00:ec2::254]/", "https://localhost/",
    "https://foo.localhost/", "http://8.8.8.8/", "ftp://8.8.8.8/", "https://user:pw@8.8.8.8/",
    "not a url", "https:///nohost",
]


@pytest.mark.parametrize("url", FORBIDDEN)
def test_forbidden_callback_targets(url):
    assert check_callback_url(url, allow_private=False) is not None


def test_public_literal_is_allowed_and_dev_mode_lifts_the_rules():
    assert check_callback_url("https://8.8.8.8/hooks", allow_private=False) is None
    assert check_callback_url("http://127.0.0.1:9000/h", allow_private=True) is None


def test_submit_rejects_a_private_callback_with_422(env, http):
    env.settings(allow_private_callbacks=False)
    resp = http.post("/v1/jobs", {"service": "echo", "callbackUrl": "https://169.254.169.254/"})
    assert resp.status_code == 422
    assert body(resp)["error"]["details"][0]["loc"] == ["callbackUrl"]


def test_delivery_rechecks_the_resolved_address(fast):
    """A name that resolves to loopback at delivery time is refused without connecting."""
    with Receiver([200]) as rx:
        port = rx.server.server_address[1]
        attempt = webhooks.post(f"https://localhost:{port}/h", {}, "{}", allow_private=False)
        assert not attempt.ok and "private" in attempt.error
        assert rx.requests == []


def test_a_job_message_back_after_an_attempt_does_not_start_a_second_schedule(fast, http):
    with Receiver([500]) as rx:
        job_id = submit(http, rx.url)
        fast.run_queue("jobs")
        fast.run_queue("callbacks")  # attempt 1 fails: its message now owns the schedule
        assert len(rx.requests) == 1
        fast.rt.dispatcher.send_job("acme", job_id, "echo")  # a late duplicate of the job message
        fast.run_queue("jobs")
    msgs = fast.rt.clients.sqs.get_queue_attributes(
        QueueUrl=fast.queues["callbacks"], AttributeNames=["All"])["Attributes"]
    in_queue = int(msgs["ApproximateNumberOfMessages"]) + int(msgs["ApproximateNumberOfMessagesNotVisible"])
    assert in_queue == 1, "one event, one retry schedule"


def test_a_job_message_back_before_any_attempt_queues_the_webhook_again(fast, http):
    with Receiver([200]) as rx:
        job_id = submit(http, rx.url)
        fast.run_queue("jobs")
        fast.rt.clients.sqs.purge_queue(QueueUrl=fast.queues["callbacks"])  # as if never sent
        fast.rt.dispatcher.send_job("acme", job_id, "echo")
        fast.run_queue("jobs")
        deliver_until(fast, lambda: len(rx.requests) == 1)
