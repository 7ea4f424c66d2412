"""Webhook delivery hardening (issue 11): a delivery never raises past its attempt, the
callbacks DLQ has a consumer, one attempt has one time budget, redeliveries are bounded
and the stored attempts capped, and `lastError` is never ""."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import telemetry, webhooks
from chalicelib.store import KEEP_LAST_DELIVERIES
from localrunner.receiver import Receiver
from tests.conftest import body

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)


@pytest.fixture
def fast(env: Any) -> Any:
    env.settings(callback_retry_interval_seconds=1, callback_max_retries=5)
    return env


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = telemetry.metric

    def record(name: str, *a: Any, **kw: Any) -> None:
        seen.append(name)
        real(name, *a, **kw)

    monkeypatch.setattr(telemetry, "metric", record)
    return seen


def finished_job(env: Any, http: Any, url: str) -> str:
    """A succeeded job whose webhook is pending, with its callback message taken off the
    queue (the test sends the message it wants)."""
    resp = http.post("/v1/jobs", {"service": "echo", "input": {"n": 1}, "callbackUrl": url})
    assert resp.status_code == 202, resp.body
    job_id = body(resp)["jobId"]
    env.run_queue("jobs")
    env.rt.clients.sqs.purge_queue(QueueUrl=env.queues["callbacks"])
    return job_id


def callback_message(env: Any, job_id: str, url: str) -> str:
    job = env.rt.store.get("acme", job_id, time.time())
    return json.dumps({"tenant": "acme", "jobId": job_id, "eventId": f"evt_{job_id}",
                       "url": url, "event": job.callback_event})


def callback(http: Any, job_id: str) -> dict[str, Any]:
    return body(http.get(f"/v1/jobs/{job_id}"))["callback"]


# -- item 3: whatever the URL, a delivery is a recorded attempt -----------------------------------

@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hé", "http://1.2.3.4 x/", "http://a b/",
                                 "http://127.0.0.1:9/\x01", "http://[::1/", "https://0x7f.1/",
                                 "http://127.0.0.1:9/a\r\nX: y"])
def test_a_url_stored_before_the_rules_is_a_failed_attempt(fast: Any, http: Any, metrics: list[str],
                                                           url: str) -> None:
    fast.settings(callback_max_retries=0)
    with Receiver([200]) as rx:
        job_id = finished_job(fast, http, rx.url)
    fast.rt.dispatcher.send_raw(fast.queues["callbacks"], callback_message(fast, job_id, url))
    fast.run_queue("callbacks")
    cb = callback(http, job_id)
    assert cb["state"] == "failed" and cb["attempts"] == 1 and cb["lastError"], cb
    (attempt,) = body(http.get(f"/v1/jobs/{job_id}/deliveries"))["deliveries"]
    assert attempt["statusCode"] is None and attempt["error"]
    assert metrics.count("CallbacksGivenUp") == 1
    assert fast.messages("callbacks") == [] and fast.messages("callbacks_dlq") == []


def test_an_exception_while_sending_is_a_failed_attempt(fast: Any, http: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver([200]) as rx:
        job_id = finished_job(fast, http, rx.url)
        monkeypatch.setattr(fast.rt.deliverer, "send", lambda *a, **kw: 1 / 0)
        fast.rt.dispatcher.send_raw(fast.queues["callbacks"], callback_message(fast, job_id, rx.url))
        fast.run_queue("callbacks")
    cb = callback(http, job_id)
    assert cb["state"] == "pending" and cb["attempts"] == 1
    assert "ZeroDivisionError" in cb["lastError"]


# -- item 3: the callbacks DLQ has a consumer ----------------------------------------------------

def test_the_callbacks_dlq_has_a_consumer_that_the_runner_starts() -> None:
    import app as app_module

    sources = {getattr(s, "queue", None): s.name for s in app_module.app.event_sources}
    assert sources[f"{app_module.PREFIX}-callbacks-dlq"] == "fail_dead_callbacks"
    assert "fail_dead_callbacks" in app_module.app.handler_map


def test_a_dead_lettered_webhook_is_marked_failed_once(fast: Any, http: Any,
                                                       metrics: list[str]) -> None:
    with Receiver([200]) as rx:
        job_id = finished_job(fast, http, rx.url)
    message = callback_message(fast, job_id, rx.url)
    for _ in range(2):  # SQS may hand the same message over twice
        fast.rt.dispatcher.send_raw(fast.queues["callbacks_dlq"], message)
    fast.run_queue("callbacks_dlq")
    cb = callback(http, job_id)
    assert cb["state"] == "failed" and cb["lastError"].startswith("dead_lettered"), cb
    assert metrics.count("CallbacksGivenUp") == 1
    assert fast.messages("callbacks_dlq") == []
    assert rx.requests == []  # a dead message is not sent once more


def test_a_dead_message_for_a_delivered_or_deleted_job_changes_nothing(fast: Any, http: Any,
                                                                       metrics: list[str]) -> None:
    with Receiver([200]) as rx:
        job_id = finished_job(fast, http, rx.url)
        message = callback_message(fast, job_id, rx.url)
        fast.rt.dispatcher.send_raw(fast.queues["callbacks"], message)
        fast.run_queue("callbacks")
    assert callback(http, job_id)["state"] == "delivered"
    fast.rt.dispatcher.send_raw(fast.queues["callbacks_dlq"], message)
    gone = message.replace(job_id, "01ARZ3NDEKTSV4RRFFQ69G5FAV")  # a deleted job
    fast.rt.dispatcher.send_raw(fast.queues["callbacks_dlq"], gone)
    fast.run_queue("callbacks_dlq")
    assert callback(http, job_id)["state"] == "delivered"
    assert "CallbacksGivenUp" not in metrics
    assert fast.messages("callbacks_dlq") == []


def test_a_malformed_dead_message_is_parked_for_an_operator(fast: Any) -> None:
    fast.rt.dispatcher.send_raw(fast.queues["callbacks_dlq"], "not a callback message")
    msgs = fast.messages("callbacks_dlq")
    out = fast.deliver(msgs, "callbacks_dlq")
    assert isinstance(out, Exception)  # reported failed: the message stays, hidden
    attrs = fast.rt.clients.sqs.get_queue_attributes(
        QueueUrl=fast.queues["callbacks_dlq"], AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_a_given_up_webhook_is_not_also_dead_lettered(fast: Any, http: Any, metrics: list[str]) -> None:
    fast.settings(callback_max_retries=0)
    with Receiver([500]) as rx:
        job_id = finished_job(fast, http, rx.url)
        fast.rt.dispatcher.send_raw(fast.queues["callbacks"], callback_message(fast, job_id, rx.url))
        fast.run_queue("callbacks")
    assert callback(http, job_id)["state"] == "failed"
    assert metrics.count("CallbacksGivenUp") == 1
    assert fast.messages("callbacks_dlq") == []


# -- item 5: one budget for the whole attempt ----------------------------------------------------

class Dripper:
    """A receiver that answers one byte at a time: in its status line and headers, or in
    its body (after complete headers with a Content-Length)."""

    def __init__(self, where: str, interval: float = 0.1, total: float = 60.0):
        self.where, self.interval, self.total = where, interval, total
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    conn.recv(65536)
                    n = int(self.total / self.interval)
                    if self.where == "headers":
                        head, tail = b"HTTP/1.1 200 OK\r\n", b"Content-Length: 0\r\n\r\n"
                        data = head + b"X-Drip: " + b"a" * n + b"\r\n" + tail
                    else:
                        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
                        data = b"x" * n
                    for i in range(len(data)):
                        if self.stop.is_set():
                            break
                        conn.sendall(data[i:i + 1])
                        self.stop.wait(self.interval)
                except OSError:
                    pass

    def __enter__(self) -> Dripper:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.slow  # waits on the wall clock (a retry interval, a deadline)
@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_dripping_receiver_gets_one_budget_and_fails(where: str) -> None:
    with Dripper(where) as drip:
        started = time.monotonic()
        attempt = webhooks.post(f"http://127.0.0.1:{drip.port}/h", {}, "{}", allow_private=True,
                                timeout=1.0)
        took = time.monotonic() - started
    assert not attempt.ok and "timeout" in attempt.error, attempt
    # The drip would take 60 s and per-read timeouts never fire: ending anywhere near the 1 s
    # budget is the budget at work (the margin is for a loaded machine, not a race).
    assert took < 20.0, took
    assert 1000 <= attempt.duration_ms < 20_000, attempt


@pytest.mark.slow  # waits on the wall clock (a retry interval, a deadline)
def test_the_deliverer_uses_its_budget(fast: Any, http: Any) -> None:
    fast.rt.deliverer.timeout = 1.0
    with Dripper("body") as drip:
        url = f"http://127.0.0.1:{drip.port}/h"
        job_id = finished_job(fast, http, url)
        fast.rt.dispatcher.send_raw(fast.queues["callbacks"], callback_message(fast, job_id, url))
        fast.run_queue("callbacks", rounds=1)
    cb = callback(http, job_id)
    assert cb["state"] == "pending" and cb["attempts"] == 1 and "timeout" in cb["lastError"]
    assert cb["lastError"] == "timeout after 1s", cb  # the deliverer's budget, not the default
    (attempt,) = body(http.get(f"/v1/jobs/{job_id}/deliveries"))["deliveries"]
    assert 1000 <= attempt["durationMs"] < 20_000, attempt  # the drip would take 60 s


# -- redelivery: at most one pending, attempts capped ------------------------------------------------

@pytest.fixture
def delivered(fast: Any, http: Any) -> Iterator[tuple[str, Receiver]]:
    with Receiver([200]) as rx:
        resp = http.post("/v1/jobs", {"service": "echo", "input": {}, "callbackUrl": rx.url})
        job_id = body(resp)["jobId"]
        fast.run_queue("jobs")
        fast.run_queue("callbacks")
        assert callback(http, job_id)["state"] == "delivered"
        yield job_id, rx


def test_one_pending_redelivery_per_job(fast: Any, http: Any, delivered: Any) -> None:
    job_id, rx = delivered
    answers = [http.post(f"/v1/jobs/{job_id}/deliveries") for _ in range(20)]
    assert [a.status_code for a in answers].count(202) == 1
    refused = [a for a in answers if a.status_code != 202]
    assert {a.status_code for a in refused} == {409}
    assert {body(a)["error"]["code"] for a in refused} == {"delivery_pending"}
    attrs = fast.rt.clients.sqs.get_queue_attributes(
        QueueUrl=fast.queues["callbacks"], AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "1"  # one schedule
    fast.run_queue("callbacks")
    assert len(rx.requests) == 2 and callback(http, job_id)["state"] == "delivered"
    assert http.post(f"/v1/jobs/{job_id}/deliveries").status_code == 202  # settled: allowed again


def test_the_first_schedule_also_counts_as_pending(fast: Any, http: Any) -> None:
    with Receiver([500]) as rx:
        resp = http.post("/v1/jobs", {"service": "echo", "input": {}, "callbackUrl": rx.url})
        job_id = body(resp)["jobId"]
        fast.run_queue("jobs")
        fast.run_queue("callbacks", rounds=1)
    resp = http.post(f"/v1/jobs/{job_id}/deliveries")
    assert resp.status_code == 409 and body(resp)["error"]["code"] == "delivery_pending"


def test_a_redelivery_that_cannot_be_queued_can_be_asked_again(
        fast: Any, http: Any, delivered: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id, _ = delivered

    def down(*a: Any, **kw: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "InternalError", "Message": "down"}}, "SendMessage")

    monkeypatch.setattr(fast.rt.dispatcher, "send_callback", down)
    assert http.post(f"/v1/jobs/{job_id}/deliveries").status_code == 503
    assert callback(http, job_id)["state"] == "delivered"
    monkeypatch.undo()
    assert http.post(f"/v1/jobs/{job_id}/deliveries").status_code == 202


def test_stored_attempts_keep_the_first_and_the_last_n(fast: Any, http: Any) -> None:
    with Receiver([200]) as rx:
        job_id = finished_job(fast, http, rx.url)
    total = KEEP_LAST_DELIVERIES + 4
    for i in range(1, total + 1):
        fast.rt.store.record_delivery("acme", job_id, {
            "at": f"2030-01-01T00:00:{i % 60:02d}.000Z", "statusCode": 500, "error": f"HTTP 500 #{i}",
            "durationMs": i}, delivered=False, at=time.time())
    job = fast.rt.store.get("acme", job_id, time.time())
    assert len(job.deliveries) == 1 + KEEP_LAST_DELIVERIES and job.callback_attempts == total
    items = body(http.get(f"/v1/jobs/{job_id}/deliveries"))["deliveries"]
    assert [d["attempt"] for d in items] == [1, *range(total - KEEP_LAST_DELIVERIES + 1, total + 1)]
    assert [d["durationMs"] for d in items] == [d["attempt"] for d in items]  # true numbers
    assert callback(http, job_id)["attempts"] == total


# -- lastError: absent after a success, never "" ---------------------------------------------------

@pytest.mark.slow  # waits on the wall clock (a retry interval, a deadline)
def test_last_error_is_absent_after_a_success(fast: Any, http: Any) -> None:
    with Receiver([500, 200]) as rx:
        resp = http.post("/v1/jobs", {"service": "echo", "input": {}, "callbackUrl": rx.url})
        job_id = body(resp)["jobId"]
        fast.run_queue("jobs")
        fast.run_queue("callbacks", rounds=1)
        assert callback(http, job_id)["lastError"] == "HTTP 500"
        deadline = time.monotonic() + 20
        while callback(http, job_id)["state"] != "delivered" and time.monotonic() < deadline:
            fast.run_queue("callbacks")
            time.sleep(0.2)
    cb = callback(http, job_id)
    assert cb["state"] == "delivered" and cb.get("lastError") is None, cb
    job = fast.rt.store.get("acme", job_id, time.time())
    assert job.callback_last_error is None
    items = body(http.get(f"/v1/jobs/{job_id}/deliveries"))["deliveries"]
    assert items[-1]["error"] is None and items[0]["error"] == "HTTP 500"
