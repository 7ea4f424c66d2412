"""The compatibility rules that need no live runner: IBM BAW's retry schedule (from the
page's own 100Custom.xml snippets), Guidewire's `wait-ms` and `GW-Async-Location`."""

from __future__ import annotations

import re

import pytest

from chalicelib.compat import guidewire
from chalicelib.httpio import parse_prefer
from chalicelib.messages import Retry
from chalicelib.tenants import Tenant
from localrunner.receiver import Receiver
from tests.conftest import KEY_A, SECRET_A, body
from tests.seeds import seed


def baw_settings() -> tuple[int, int]:
    page = seed("callback-retry-interval")
    interval = re.search(r"<callback-retry-interval>(\d+)</callback-retry-interval>", page)
    retries = re.search(r"<callback-maximum-retries>(\d+)</callback-maximum-retries>", page)
    return int(interval.group(1)), int(retries.group(1))


def delays(env, http, schedule: str | None) -> list[int]:
    """Every retry delay the callback sender asks for, for a receiver that always fails."""
    interval, retries = baw_settings()
    env.rt.tenants.put_tenant(Tenant(name="acme", webhook_secrets=[SECRET_A],
                                     callback_retry_interval=interval,
                                     callback_max_retries=retries, retry_schedule=schedule))
    with Receiver([500]) as rx:
        resp = http.post("/v1/jobs", {"service": "echo", "input": {}, "callbackUrl": rx.url},
                         key=KEY_A)
        assert resp.status_code == 202, resp.body
        env.run_queue("jobs")
        (message,) = env.messages("callbacks")
        out = []
        for _ in range(retries + 1):
            try:
                env.rt.deliverer.process(message["Body"])
            except Retry as retry:
                out.append(retry.delay)
        assert len(rx.requests) == retries + 1
    return out


def test_baw_fixed_schedule_retries_every_interval(env, http):
    interval, retries = baw_settings()
    assert (interval, retries) == (60, 5)  # the page's defaults
    assert delays(env, http, "fixed") == [interval] * retries  # 5 retries in 5 minutes


def test_the_default_schedule_stays_exponential(env, http):
    got = delays(env, http, None)
    assert len(got) == 5
    bounds = [(54, 66), (108, 132), (216, 264), (432, 528), (864, 1056)]  # 60 s doubling, ±10 %
    assert all(lo <= d <= hi for d, (lo, hi) in zip(got, bounds, strict=True)), got


@pytest.mark.parametrize(("header", "expected"), [
    ("respond-async, wait-ms=1500", (True, 1.5, "wait-ms=1500")),
    ("wait-ms=999999", (False, 20.0, "wait-ms=20000")),
    ("wait=3", (False, 3, "wait=3")),
    ("wait-ms=soon", (False, None, None)),
    (None, (False, None, None)),
])
def test_prefer_wait_ms(header, expected):
    assert parse_prefer(header) == expected


def test_gw_async_location_keeps_the_stage_prefix():
    base = "https://abc.execute-api.eu-west-1.amazonaws.com/api"
    assert guidewire.async_location(base, "01J") == "/api/async/v1/requests/01J"
    assert guidewire.async_location("http://127.0.0.1:8000", "01J") == "/async/v1/requests/01J"


def test_submit_document_202_carries_gw_async_location(env, http):
    resp = http.request("POST", "/v1/services/echo/jobs", body=b"{}",
                        headers={"Content-Type": "application/json"})
    assert resp.status_code == 202
    assert resp.headers["GW-Async-Location"] == f"/async/v1/requests/{body(resp)['jobId']}"


def test_shoptet_token_is_never_rescued_by_another_credential(env, http):
    """Both credentials sent: both must hold, for one tenant (a wrong Authorization next to a
    good token is 401, as schemathesis' ignored-auth check expects)."""
    from tests.conftest import KEY_A, KEY_B

    def get(headers: dict[str, str]) -> int:
        return http.request("GET", "/api/system/jobs", key=None, headers=headers).status_code

    assert get({"Shoptet-Access-Token": KEY_A}) == 200
    assert get({"Shoptet-Access-Token": KEY_A, "Authorization": f"Bearer {KEY_A}"}) == 200
    assert get({"Shoptet-Access-Token": KEY_A, "Authorization": "Bearer wrong"}) == 401
    assert get({"Shoptet-Access-Token": KEY_A, "Authorization": f"Bearer {KEY_B}"}) == 401
    assert get({"Shoptet-Access-Token": "wrong", "Authorization": f"Bearer {KEY_A}"}) == 401
    assert get({"Shoptet-Access-Token": " ", "Authorization": f"Bearer {KEY_A}"}) == 401
