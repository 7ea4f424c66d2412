"""Rules that a mutation once broke without any test noticing (issue 18): each test here
fails when its rule is broken. Delays, signatures and log lines are read where they take
effect (the SQS call, the request sent, the captured output), not recomputed from the code's
own formulas, and every expected value is a literal."""

from __future__ import annotations

import ipaddress
import json
import time
import types
from typing import Any

import pytest
from botocore.exceptions import ClientError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from chalicelib import store as store_module
from chalicelib import urls, webhooks
from chalicelib.ids import new_job_id
from chalicelib.jobs import Job
from chalicelib.store import Conflict, RunIdTaken
from localrunner.receiver import Receiver
from tests.conftest import KEY_A, SECRET_A, body

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)

TENANT = "acme"
NEW_SECRET = "whsec_TmV3U2VjcmV0Rm9yUm90YXRpb24xMjM0NTY3OA=="


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- the webhook retry schedule, as applied to the message ---------------------------------------

class Visibility:
    """Records the VisibilityTimeout of every ChangeMessageVisibility the callbacks handler
    makes (botocore's event hook: our code is not touched)."""

    def __init__(self, env: Any):
        self.env, self.seen = env, []
        env.rt.clients.sqs.meta.events.register(
            "before-parameter-build.sqs.ChangeMessageVisibility", self._record,
            unique_id="rules-visibility")

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.seen.append(params["VisibilityTimeout"])

    def close(self) -> None:
        self.env.rt.clients.sqs.meta.events.unregister(
            "before-parameter-build.sqs.ChangeMessageVisibility", unique_id="rules-visibility")


def failing_deliveries(env: Any, http: Any, rounds: int) -> list[int]:
    """Submit a job with a webhook whose every attempt fails (HTTP 500) and run the callback
    message `rounds` times: the delays the handler hid the message for, in order."""
    sent: list[str] = []

    def refuse(url: str, headers: dict[str, str], body_text: str, **_: Any) -> webhooks.Attempt:
        sent.append(url)
        return webhooks.Attempt(500, "HTTP 500", 3)

    env.rt.deliverer.send = refuse
    resp = http.post("/v1/jobs", {"service": "echo", "input": {"n": 1},
                                  "callbackUrl": "https://hooks.example/h"})
    assert resp.status_code == 202, resp.body
    env.run_queue("jobs")
    delays: list[int] = []
    for _ in range(rounds):
        (msg,) = env.messages("callbacks")
        spy = Visibility(env)
        try:
            env.invoke([msg], "callbacks")
        finally:
            spy.close()
        assert len(spy.seen) == 1, spy.seen
        delays.append(int(spy.seen[0]))
        env.rt.clients.sqs.change_message_visibility(  # back at once, as if the delay passed
            QueueUrl=env.queues["callbacks"], ReceiptHandle=msg["ReceiptHandle"],
            VisibilityTimeout=0)
    assert len(sent) == rounds
    return delays


def within(delays: list[int], bounds: list[tuple[int, int]]) -> bool:
    return len(delays) == len(bounds) and all(
        lo <= d <= hi for d, (lo, hi) in zip(delays, bounds, strict=True))


def set_tenant(env: Any, **values: Any) -> None:
    env.rt.tenants.update_tenant(TENANT, values)
    env.rt.tenants._tenants.clear()  # the deliverer's cache


@pytest.mark.moto  # spies on SQS through a botocore event hook
def test_the_deliverer_hides_a_failed_webhook_for_the_deployments_doubling_delays(env, http):
    env.settings(callback_retry_interval_seconds=60, callback_max_retries=5)
    delays = failing_deliveries(env, http, 4)
    # 60 s, 120 s, 240 s, 480 s, each ±10 %
    assert within(delays, [(54, 66), (108, 132), (216, 264), (432, 528)]), delays


@pytest.mark.moto  # spies on SQS through a botocore event hook
def test_the_tenants_own_retry_interval_wins(env, http):
    env.settings(callback_retry_interval_seconds=60, callback_max_retries=5)
    set_tenant(env, callbackRetryInterval=100)
    delays = failing_deliveries(env, http, 3)
    assert within(delays, [(90, 110), (180, 220), (360, 440)]), delays


@pytest.mark.moto  # spies on SQS through a botocore event hook
def test_a_fixed_schedule_tenant_waits_its_interval_every_time(env, http):
    env.settings(callback_retry_interval_seconds=60, callback_max_retries=5)
    set_tenant(env, callbackRetryInterval=100, retrySchedule="fixed")
    assert failing_deliveries(env, http, 3) == [100, 100, 100]


@pytest.mark.moto  # spies on SQS through a botocore event hook
def test_after_the_last_retry_the_webhook_fails_without_another_delay(env, http):
    env.settings(callback_retry_interval_seconds=1, callback_max_retries=2)
    delays = failing_deliveries(env, http, 2)
    assert within(delays, [(1, 2), (2, 3)]), delays
    (msg,) = env.messages("callbacks")
    spy = Visibility(env)
    try:
        out = env.deliver([msg], "callbacks")
    finally:
        spy.close()
    assert spy.seen == [] and out == {"batchItemFailures": []}
    cb = body(http.get(f"/v1/jobs/{json.loads(msg['Body'])['jobId']}"))["callback"]
    assert cb["state"] == "failed" and cb["attempts"] == 3, cb


def test_retry_delays_are_the_documented_values() -> None:
    """docs/api.md: interval × 2^(n-1), ±10 %, at most 12 h; known values, not the formula."""
    class Mid:
        def uniform(self, lo: float, hi: float) -> float:
            return 1.0

    assert [webhooks.retry_delay(n, 60, Mid()) for n in (1, 2, 3, 4, 10, 11, 30)] == [
        60, 120, 240, 480, 30_720, 43_200, 43_200]
    assert webhooks.retry_delay(1, 60, Mid(), schedule="fixed") == 60
    assert webhooks.retry_delay(7, 60, Mid(), schedule="fixed") == 60
    assert webhooks.retry_delay(1, 0, Mid()) == 1


# -- signing: the previous secret only while the rotation window is open -------------------------

def signed_request(env: Any, http: Any) -> dict[str, Any]:
    sent: list[dict[str, Any]] = []

    def accept(url: str, headers: dict[str, str], body_text: str, **_: Any) -> webhooks.Attempt:
        sent.append({"headers": headers, "body": body_text})
        return webhooks.Attempt(200, None, 2)

    env.rt.deliverer.send = accept
    resp = http.post("/v1/jobs", {"service": "echo", "callbackUrl": "https://hooks.example/h"})
    assert resp.status_code == 202, resp.body
    env.run_queue("jobs")
    env.run_queue("callbacks")
    (req,) = sent
    return req


def test_both_secrets_sign_while_the_rotation_window_is_open(env, http):
    set_tenant(env, webhookSecrets=[NEW_SECRET, SECRET_A], rotationEndsAt=time.time() + 3600)
    req = signed_request(env, http)
    assert len(req["headers"]["webhook-signature"].split(" ")) == 2
    Webhook(NEW_SECRET).verify(req["body"], req["headers"])
    Webhook(SECRET_A).verify(req["body"], req["headers"])


def test_after_the_rotation_window_only_the_current_secret_signs(env, http):
    """The previous secret is still stored, but its window has passed: it must not sign."""
    set_tenant(env, webhookSecrets=[NEW_SECRET, SECRET_A], rotationEndsAt=time.time() - 60)
    req = signed_request(env, http)
    assert len(req["headers"]["webhook-signature"].split(" ")) == 1
    Webhook(NEW_SECRET).verify(req["body"], req["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_A).verify(req["body"], req["headers"])


# -- no secret in the output of a real delivery ----------------------------------------------------

def test_a_delivered_webhook_logs_no_secret(env, http, capsys):
    capsys.readouterr()
    with Receiver([200]) as rx:
        resp = http.post("/v1/jobs", {"service": "echo", "callbackUrl": rx.url})
        assert resp.status_code == 202
        env.run_queue("jobs")
        env.run_queue("callbacks")
        assert len(rx.requests) == 1  # the webhook was sent, signed with SECRET_A
        Webhook(SECRET_A).verify(rx.requests[0]["body"], rx.requests[0]["headers"])
    out = capsys.readouterr()
    text = out.out + out.err
    lines = [json.loads(x) for x in out.out.splitlines() if x.startswith("{")]
    assert any(x.get("message") == "webhook delivered" for x in lines), "no delivery logged"
    for secret in (SECRET_A, SECRET_A.removeprefix("whsec_"), KEY_A):
        assert secret not in text


# -- runId: a transaction conflict is a submit in flight, not a taken runId ----------------------

def conflict() -> ClientError:
    return ClientError({
        "Error": {"Code": "TransactionCanceledException",
                  "Message": "Transaction cancelled, please refer cancellation reasons for "
                             "specific reasons [TransactionConflict, None]"},
        "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
    }, "TransactWriteItems")


def make_job(run_id: str, request_hash: str) -> Job:
    now = time.time()
    return Job(tenant=TENANT, job_id=new_job_id(now), service="echo", status="queued",
               created_at=now, expires_at=now + 3600, run_id=run_id, request_hash=request_hash)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(store_module, "time", types.SimpleNamespace(
        sleep=waited.append, time=time.time, monotonic=time.monotonic))
    return waited


def conflicting(monkeypatch: pytest.MonkeyPatch, env: Any, times: int) -> list[int]:
    db = env.rt.store._db
    real = db.transact_write_items
    calls: list[int] = []

    def transact(**kw: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            raise conflict()
        return real(**kw)

    monkeypatch.setattr(db, "transact_write_items", transact)
    return calls


@pytest.mark.moto  # injects DynamoDB transaction conflicts
def test_a_run_id_conflict_with_a_submit_in_flight_is_tried_again(env, monkeypatch, sleeps):
    job = make_job("run-inflight", "h1")
    calls = conflicting(monkeypatch, env, times=2)
    env.rt.store.create(job)
    assert len(calls) == 3 and sleeps == [0.02, 0.04]
    assert env.rt.store.run_id_owner(TENANT, "run-inflight") == (job.job_id, "h1")
    assert env.rt.store.get(TENANT, job.job_id, time.time()) is not None


@pytest.mark.moto  # injects DynamoDB transaction conflicts
def test_a_run_id_won_by_the_concurrent_submit_is_taken(env, monkeypatch, sleeps):
    winner = make_job("run-race", "h-winner")
    mine = make_job("run-race", "h-mine")
    env.rt.store.create(winner)  # the concurrent submit's transaction, now visible
    calls = conflicting(monkeypatch, env, times=1)
    with pytest.raises(RunIdTaken) as taken:
        env.rt.store.create(mine)
    assert (taken.value.job_id, taken.value.request_hash) == (winner.job_id, "h-winner")
    assert len(calls) == 1 and sleeps == []
    assert env.rt.store.get(TENANT, mine.job_id, time.time()) is None


@pytest.mark.moto  # injects DynamoDB transaction conflicts
def test_a_conflict_that_never_clears_gives_up_after_six_tries(env, monkeypatch, sleeps):
    job = make_job("run-stuck", "h")
    calls = conflicting(monkeypatch, env, times=100)
    from chalicelib.ports import StoreUnavailable

    with pytest.raises(StoreUnavailable, match="TransactionCanceledException"):
        env.rt.store.create(job)  # the adapter's own error (ports), never botocore's
    assert len(calls) == 6 and sleeps == [0.02, 0.04, 0.08, 0.16, 0.32]


# -- the terminal write: both halves of its condition --------------------------------------------

def put_job(env: Any, **fields: Any) -> Job:
    now = time.time()
    job = Job(tenant=TENANT, job_id=new_job_id(now), service="echo", created_at=now,
              expires_at=now + 3600, **fields)
    env.rt.store.create(job)
    return job


@pytest.mark.parametrize("status", ["canceled", "succeeded", "failed", "queued"])
def test_finish_needs_the_job_running_even_with_the_right_token(env, status):
    """A job that is not running keeps its state, even if an item still carries the token
    (an older writer, a hand edit): the status half of the condition on its own."""
    job = put_job(env, status=status, lease_token="tok-1", lease_until=time.time() + 60)
    with pytest.raises(Conflict) as lost:
        env.rt.store.finish(TENANT, job.job_id, "tok-1", "succeeded", {"resultKey": "k"},
                            time.time())
    assert lost.value.job is not None and lost.value.job.status == status
    after = env.rt.store.get(TENANT, job.job_id, time.time())
    assert after.status == status and after.result_key is None


def test_finish_needs_the_lease_token_even_while_running(env):
    """A running job re-leased by another worker: the token half of the condition alone."""
    job = put_job(env, status="running", lease_token="tok-new", lease_until=time.time() + 60,
                  attempts=2)
    with pytest.raises(Conflict):
        env.rt.store.finish(TENANT, job.job_id, "tok-old", "succeeded", {"resultKey": "k"},
                            time.time())
    after = env.rt.store.get(TENANT, job.job_id, time.time())
    assert after.status == "running" and after.lease_token == "tok-new"
    ended = env.rt.store.finish(TENANT, job.job_id, "tok-new", "succeeded", {"resultKey": "k"},
                                time.time())
    assert ended.status == "succeeded" and ended.lease_token is None


# -- a heartbeat that lost the lease raises Canceled in the handler ------------------------------

def test_a_progress_write_after_a_cancel_raises_canceled_in_the_handler(env, http, add_service):
    from chalicelib.services import Canceled

    ticks = Ticks()
    env.rt.worker.ticks = ticks
    seen: list[str] = []

    def handler(data: Any, ctx: Any) -> Any:
        ctx.progress(10, "first")  # written: the first write is never held back
        env.rt.store.cancel(TENANT, ctx.job_id, time.time(), {})
        ticks.advance(5)  # past the throttle: the next progress is written
        try:
            ctx.progress(50, "after the cancel")
        except Canceled:
            seen.append("Canceled")
            raise
        seen.append("nothing raised")
        return {"late": True}

    add_service("canceled-midway", handler)
    job_id = body(http.post("/v1/jobs", {"service": "canceled-midway", "input": {}}))["jobId"]
    assert env.run_queue() == 1
    assert seen == ["Canceled"]
    job = env.rt.store.get(TENANT, job_id, time.time())
    assert job.status == "canceled" and job.progress_percent == 10 and job.result_key is None


# -- callback URL ranges: by class, not by Python's idea of is_global ----------------------------

EMBEDDING = ["::7f00:1", "::ffff:127.0.0.1", "::ffff:0:7f00:1", "64:ff9b::7f00:1",
             "64:ff9b:1::a00:1", "2002:7f00:1::1", "2002:808:808::1",
             "2001:0:4136:e378:8000:63bf:3fff:fdd2"]


@pytest.mark.parametrize("address", EMBEDDING)
def test_every_ipv4_embedding_range_is_recognised(address: str) -> None:
    assert urls.embedded_ipv4(ipaddress.IPv6Address(address))


@pytest.mark.parametrize("address", ["2606:4700:4700::1111", "2a00:1450:4001::1", "2001:4860::8888"])
def test_global_ipv6_does_not_embed_ipv4(address: str) -> None:
    assert not urls.embedded_ipv4(ipaddress.IPv6Address(address))
    assert not urls.forbidden(ipaddress.IPv6Address(address))


@pytest.fixture
def naive_is_global(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python whose is_global says yes to everything (older releases were wrong about
    several blocks): the module's own lists must still refuse them."""
    monkeypatch.setattr(ipaddress.IPv6Address, "is_global", property(lambda self: True))
    monkeypatch.setattr(ipaddress.IPv4Address, "is_global", property(lambda self: True))


@pytest.mark.parametrize("address", [
    "2002:808:808::1", "2001::1", "2001:2::1", "2001:db8::1", "3fff::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "10.0.0.1", "100.64.0.1", "127.0.0.1", "169.254.169.254", "172.16.0.1", "192.0.0.8",
    "192.0.2.1", "192.88.99.1", "192.168.1.1", "198.18.0.1", "198.51.100.1", "203.0.113.1",
    "224.0.0.1", "240.0.0.1", "0.0.0.1",
])
def test_reserved_blocks_are_refused_whatever_pythons_is_global_says(naive_is_global: None,
                                                                     address: str) -> None:
    assert urls.forbidden(ipaddress.ip_address(address))


def test_64_ff9b_1_is_refused_even_as_global_unicast(monkeypatch: pytest.MonkeyPatch) -> None:
    """64:ff9b:1::/48 (local-use NAT64) lies outside 2000::/3 today; the embedding list must
    refuse it on its own (were the global-unicast test ever widened)."""
    monkeypatch.setattr(urls, "_V6_GLOBAL_UNICAST", ipaddress.ip_network("::/0"))
    for address in ("64:ff9b:1::a00:1", "64:ff9b::808:808", "::ffff:8.8.8.8"):
        assert urls.forbidden(ipaddress.IPv6Address(address)), address


def test_submit_resolves_the_host_and_refuses_a_private_answer(monkeypatch, env, http):
    """The name is syntactically fine and only its DNS answer is private."""
    monkeypatch.setattr(urls, "getaddrinfo", lambda host, port: [
        (2, 1, 6, "", ("10.0.0.7", port))] if host == "inside.example" else [
        (2, 1, 6, "", ("93.184.216.34", port))])
    env.settings(allow_private_callbacks=False)
    refused = http.post("/v1/jobs", {"service": "echo", "callbackUrl": "https://inside.example/h"})
    assert refused.status_code == 422, refused.body
    assert "resolve" in body(refused)["error"]["details"][0]["msg"]
    accepted = http.post("/v1/jobs", {"service": "echo", "callbackUrl": "https://outside.example/h"})
    assert accepted.status_code == 202, accepted.body


# -- a revoked key: cached for 5 s at most, on a clock the test moves -----------------------------

@pytest.mark.moto  # the tenant store's cache over DynamoDB
def test_a_revoked_key_works_until_the_cache_expires_then_never(env, monkeypatch):
    from chalicelib import tenants as tenants_module
    from chalicelib.tenants import TenantStore, Unauthorized, key_digest

    now = [500.0]
    monkeypatch.setattr(tenants_module, "time", types.SimpleNamespace(
        monotonic=lambda: now[0], time=time.time))
    other = TenantStore(env.rt.clients.dynamodb, env.rt.settings.table_name)  # 5 s default
    assert other.authenticate(f"Bearer {KEY_A}").name == TENANT
    env.rt.clients.dynamodb.delete_item(  # the key's record gone (a revoke, as the admin does)
        TableName=env.rt.settings.table_name,
        Key={"pk": {"S": f"KEY#{key_digest(KEY_A)}"}, "sk": {"S": "KEY"}})
    now[0] += 4.9
    assert other.authenticate(f"Bearer {KEY_A}").name == TENANT  # still cached
    now[0] += 0.1
    with pytest.raises(Unauthorized):  # the domain error app.py answers with 401
        other.authenticate(f"Bearer {KEY_A}")


# -- found by `make mutate` ---------------------------------------------------------------------------

def test_a_fixed_schedule_never_waits_less_than_a_second_nor_more_than_its_interval() -> None:
    assert [webhooks.retry_delay(n, 1, schedule="fixed") for n in (1, 2, 9)] == [1, 1, 1]
    assert webhooks.retry_delay(3, 0, schedule="fixed") == 1
    assert webhooks.retry_delay(1, 99_999, schedule="fixed") == 43_200


def test_setting_the_callback_state_records_the_error_and_needs_the_expected_state(env):
    job = put_job(env, status="succeeded", callback_url="https://hooks.example/h",
                  callback_state="pending")
    with pytest.raises(Conflict):
        env.rt.store.set_callback_state(TENANT, job.job_id, "failed", "delivered", error="x")
    failed = env.rt.store.set_callback_state(TENANT, job.job_id, "failed", "pending",
                                             error="dead_lettered: gone")
    assert (failed.callback_state, failed.callback_last_error) == ("failed",
                                                                  "dead_lettered: gone")
    stored = env.rt.store.get(TENANT, job.job_id, time.time())
    assert (stored.callback_state, stored.callback_last_error, stored.status) == (
        "failed", "dead_lettered: gone", "succeeded")
    with pytest.raises(Conflict):  # a job that is gone is not recreated by it
        env.rt.store.set_callback_state(TENANT, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "failed",
                                        "pending")


OWN_PORTS = (("127.0.0.1", 4566), ("10.0.0.9", 80))


@pytest.mark.parametrize(("address", "port", "refused"), [
    ("127.0.0.1", 4566, True), ("::1", 4566, True), ("::ffff:127.0.0.1", 4566, True),
    ("::127.0.0.1", 4566, True), ("10.0.0.9", 80, True),
    ("93.184.216.34", 4566, False),          # another host on the same port
    ("10.0.0.10", 80, False),                # the neighbour of a forbidden address
    ("2606:4700:4700::1111", 4566, False),   # a global IPv6 address
    ("127.0.0.1", 4567, False),              # this host, another port
])
def test_only_the_deployments_own_endpoints_are_forbidden(address, port, refused) -> None:
    problem = urls.check_addresses([ipaddress.ip_address(address)], port, True, OWN_PORTS)
    assert (problem is not None) == refused, problem
