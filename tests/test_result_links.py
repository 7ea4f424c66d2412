"""`resultUrl` works until `validUntil` for whoever holds it: it is a Jobgate link signed
with the deployment's secret (not a presigned S3 URL, which Lambda's role credentials
cannot make live 24 h) that answers 303 to a fresh short presigned URL; 410 after
`validUntil`, 403 when tampered with, 404 when the job or its result is gone."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import KEY_B, body
from tests.test_routes import (
    HOST,
    Clock,
    _apigw_event,
    error_of,
    expires_param,
    finished,
    install_clock,
    record,
)

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)

LINKS = f"https://{HOST}/v1/results/"


def follow(http: Any, url: str, **kw: Any) -> Any:
    """GET a result link with no credentials at all."""
    assert url.startswith(LINKS), url
    return http.get(urlsplit(url).path, key=None, **kw)


@pytest.mark.moto  # downloads the presigned URL from moto's S3
def test_result_url_is_our_link_and_a_holder_downloads_with_no_credentials(env, http):
    import requests

    job = finished(env, http, data={"hello": "link"})
    url = job["resultUrl"]
    assert url.startswith(LINKS) and "X-Amz" not in url
    resp = follow(http, url)
    assert resp.status_code == 303 and resp.headers["Cache-Control"] == "no-store"
    download = requests.get(resp.headers["Location"], timeout=10)
    assert download.status_code == 200 and json.loads(download.content) == {"hello": "link"}


@pytest.mark.parametrize("hours_later", [1.5, 12, 23.9])
def test_the_link_outlives_the_presigned_urls_it_hands_out(env, http, hours_later):
    job = finished(env, http)
    valid_until = record(env, job["jobId"]).valid_until
    completed = valid_until - env.rt.settings.result_ttl_seconds
    clock = Clock(completed + hours_later * 3600)
    install_clock(env, clock)
    assert body(http.get(f"/v1/jobs/{job['jobId']}"))["resultUrl"] == job["resultUrl"]
    resp = follow(http, job["resultUrl"])  # the link saved at completion, still good
    assert resp.status_code == 303
    seconds = expires_param(resp.headers["Location"])
    assert 1 <= seconds <= min(env.rt.settings.presign_max_seconds, valid_until - clock.now)


def test_after_valid_until_the_link_answers_410(env, http):
    job = finished(env, http)
    install_clock(env, Clock(record(env, job["jobId"]).valid_until + 1))
    error_of(follow(http, job["resultUrl"]), 410, "result_expired")


def test_a_tampered_link_answers_403(env, http):
    mine = finished(env, http)["resultUrl"]
    other = body(http.get(f"/v1/jobs/{finished(env, http)['jobId']}"))["resultUrl"]
    token = urlsplit(mine).path.rsplit("/", 1)[1]
    head, tail = token.split(".")
    other_head = urlsplit(other).path.rsplit("/", 1)[1].split(".")[0]
    flipped = tail[:-2] + ("A" if tail[-2] != "A" else "B") + tail[-1]
    for bad in (f"{head}.{flipped}", f"{other_head}.{tail}", head, "x", "..", "%00",
                f"{head}.", f".{tail}", "a" * 3000, f"{head}.{tail}x"):
        error_of(http.get(f"/v1/results/{bad}", key=None), 403, "invalid_link")


def test_a_link_signed_with_another_secret_answers_403(env, http):
    url = finished(env, http)["resultUrl"]
    env.settings(link_secret="another-deployment-secret")
    error_of(follow(http, url), 403, "invalid_link")


def test_a_deleted_job_or_another_result_answers_404(env, http):
    job = finished(env, http)
    assert http.delete(f"/v1/jobs/{job['jobId']}").status_code == 204
    error_of(follow(http, job["resultUrl"]), 404, "not_found")
    again = finished(env, http)
    env.rt.store.update_fields("acme", again["jobId"], {"resultKey": "results/acme/x/other"})
    error_of(follow(http, again["resultUrl"]), 404, "not_found")


def test_the_link_names_one_tenants_job_only(env, http):
    """bobco's key is not needed and not useful: the link alone decides."""
    job = finished(env, http)
    resp = http.get(urlsplit(job["resultUrl"]).path, key=KEY_B)
    assert resp.status_code == 303
    assert f"results/acme/{job['jobId']}/" in resp.headers["Location"]


def test_the_webhook_event_carries_the_same_long_lived_link(env, http):
    job = finished(env, http)
    rec = record(env, job["jobId"])
    event = json.loads(env.rt.view.event(rec))
    assert event["data"]["resultUrl"] == job["resultUrl"]  # base from the job: absolute


@pytest.mark.moto  # checks the presigned URL's S3 signature
def test_the_link_keeps_the_stage_prefix_behind_api_gateway(env, http):
    import app as app_module

    job = finished(env, http)
    got = app_module.app(_apigw_event("GET", "/v1/jobs/{jobId}", f"/v1/jobs/{job['jobId']}", "api",
                                      path_params={"jobId": job["jobId"]}), None)
    url = json.loads(got["body"])["resultUrl"]
    base = "https://abc.execute-api.us-east-1.amazonaws.com/api"
    assert url.startswith(f"{base}/v1/results/"), url
    token = url.rsplit("/", 1)[1]
    event = _apigw_event("GET", "/v1/results/{token}", f"/v1/results/{token}", "api",
                         path_params={"token": token})
    event["headers"].pop("Authorization", None)
    event["multiValueHeaders"].pop("Authorization", None)
    out = app_module.app(event, None)
    assert out["statusCode"] == 303, out
    assert parse_qs(urlsplit(out["headers"]["Location"]).query)["X-Amz-Signature"]


def test_on_aws_without_a_secret_no_link_is_made_fail_closed(env, http, monkeypatch):
    job = finished(env, http)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "jobgate-prod")
    env.rt.view.stage_secret = None  # neither JOBGATE_LINK_SECRET nor a stage secret
    assert "resultUrl" not in body(http.get(f"/v1/jobs/{job['jobId']}"))
    error_of(follow(http, job["resultUrl"]), 503, "unavailable")
    assert http.get(f"/v1/jobs/{job['jobId']}/result").status_code == 303  # unchanged
    env.settings(link_secret="configured-secret-0123456789abcdef")
    url = body(http.get(f"/v1/jobs/{job['jobId']}"))["resultUrl"]
    assert follow(http, url).status_code == 303


def test_without_a_link_secret_the_stage_secret_signs_links_even_on_aws(env, http,
                                                                        monkeypatch):
    """A deployed stage sets no JOBGATE_LINK_SECRET: links are signed with a key derived
    from the stage's generated secret (not the secret itself), and another stage's secret
    does not verify them."""
    from chalicelib import links

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "jobgate-prod-run_jobs")
    env.settings(link_secret="")
    env.rt.view.stage_secret = lambda: b"s" * 40
    url = finished(env, http)["resultUrl"]
    assert url and follow(http, url).status_code == 303
    token = urlsplit(url).path.rsplit("/", 1)[1]
    assert links.verify(links.derive(b"s" * 40), token).tenant == "acme"
    with pytest.raises(links.InvalidLink):
        links.verify(b"s" * 40, token)  # derived, never the stage secret itself
    env.rt.view.stage_secret = lambda: b"t" * 40
    error_of(follow(http, url), 403, "invalid_link")
    env.rt.view.stage_secret = None
    error_of(follow(http, url), 503, "unavailable")  # on AWS with no secret at all: closed
