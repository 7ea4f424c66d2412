"""Guidewire, Shoptet, Starfish and IBM BAW pages, replayed against the real local runner:
their example requests as written (scheme, host and port replaced), answered as the page
and docs/api.md ("Compatibility routes") describe. The Hop page is in test_hop_docs.py;
both use the one runner of tests/compat_live.py."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest
import requests
from standardwebhooks import Webhook

from localrunner.receiver import Receiver
from tests.seeds import seed

pytest_plugins = ("tests.compat_live",)

OFFSET_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def until(check, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.3)


def json_blocks(text: str) -> list[dict]:
    """The page's example JSON documents that parse (the images example has a trailing comma)."""
    out = []
    for block in re.findall(r"^\{\n.*?^\}", text, re.S | re.M):
        try:
            out.append(json.loads(block))
        except ValueError:
            continue
    return out


def wait_job(compat, job_id, auth):
    return until(lambda: (lambda j: j if j["status"] in ("succeeded", "failed") else None)(
        requests.get(f"{compat.url}/v1/jobs/{job_id}", auth=auth, timeout=10).json()),
        what=f"job {job_id} finished")


# -- Guidewire ------------------------------------------------------------------------------

def test_guidewire_tutorial(compat):
    page = seed("GW-Async-Location")
    payload = json.loads(re.search(r'^\{ "data".*\}$', page, re.M).group(0))
    assert "KEY: Prefer" in page and "VALUE: respond-async" in page
    assert "user\nsu\nand passwordgw" in page
    auth = ("su", "gw")  # the tutorial's Basic credentials (an imported key)
    resp = requests.post(f"{compat.url}/v1/jobs", auth=auth, timeout=10,
                         headers={"Prefer": "respond-async"},
                         json={"service": "echo", "input": payload})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["jobId"]
    # "/async/v1/requests/<asyncRequestId>", the value a random, unguessable ID
    assert resp.headers["GW-Async-Location"] == f"/async/v1/requests/{job_id}"
    status_url = compat.url + resp.headers["GW-Async-Location"]
    first = requests.get(status_url, auth=auth, timeout=10).json()
    assert first["id"] == job_id
    assert first["status"] in ("Accepted", "In Progress", "Complete")
    done = until(lambda: (lambda b: b if b["status"] == "Complete" else None)(
        requests.get(status_url, auth=auth, timeout=10).json()), what="Complete")
    assert done == {"id": job_id, "status": "Complete", "responseBodyJson": payload}
    answer = requests.get(status_url + "/response", auth=auth, timeout=10)
    assert answer.status_code == 200 and answer.json() == payload
    # another tenant cannot read it
    assert requests.get(status_url, auth=("cluster", "cluster"), timeout=10).status_code == 404


def test_guidewire_wait_ms_is_applied(compat):
    resp = requests.post(f"{compat.url}/v1/jobs", auth=("su", "gw"), timeout=30,
                         headers={"Prefer": "respond-async, wait-ms=20000"},
                         json={"service": "echo", "input": {"a": 1}})
    assert resp.status_code in (200, 202), resp.text
    assert "wait-ms=20000" in resp.headers["Preference-Applied"]
    if resp.status_code == 202:  # the job did not end within the wait
        assert resp.headers["GW-Async-Location"].startswith("/async/v1/requests/")


# -- Shoptet --------------------------------------------------------------------------------

def test_shoptet_job_detail_list_and_webhook(compat):
    page = seed("/api/system/jobs/{jobId}")
    examples = json_blocks(page)
    webhook = next(e for e in examples if e.get("event") == "job:finished")
    detail = next(e["data"] for e in examples if "endpoint" in e.get("data", {}))
    token = {"Shoptet-Access-Token": compat.keys["shopco"]}
    with Receiver([200]) as rx:
        resp = requests.post(f"{compat.url}/v1/jobs", timeout=10,
                             headers={"Authorization": f"Bearer {compat.keys['shopco']}"},
                             json={"service": "echo", "input": {"x": 1}, "callbackUrl": rx.url})
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["jobId"]
        until(lambda: rx.requests, what="the webhook")
        hook = rx.requests[0]
    event = json.loads(hook["body"])
    assert set(event) == set(webhook)
    assert event["event"] == "job:finished" and event["eventInstance"] == job_id
    assert event["eshopId"] == "shopco" and OFFSET_TIME.match(event["eventCreated"])
    Webhook(compat.secrets["shopco"]).verify(hook["body"], hook["headers"])
    # the page's job detail, with the token as the only credentials
    out = requests.get(f"{compat.url}/api/system/jobs/{job_id}", headers=token, timeout=10)
    assert out.status_code == 200, out.text
    data = out.json()["data"]
    assert set(out.json()) == {"data"} and set(data) == set(detail)
    assert data["jobId"] == job_id and data["status"] == "completed"
    for name in ("creationTime", "completionTime", "validUntil"):
        assert OFFSET_TIME.match(data[name]), data[name]
    assert re.match(r"^\d+\.\d{3}$", data["duration"]) and isinstance(data["log"], str)
    assert requests.get(data["resultUrl"], timeout=10).json() == {"x": 1}
    listing = requests.get(f"{compat.url}/api/system/jobs/", headers=token, timeout=10)
    assert listing.status_code == 200
    assert job_id in [j["jobId"] for j in listing.json()["data"]["jobs"]]
    done = requests.get(f"{compat.url}/api/system/jobs?status=completed", headers=token,
                        timeout=10).json()["data"]["jobs"]
    assert {j["status"] for j in done} == {"completed"}
    # the token is a key like any other: wrong or absent is 401, another tenant's job 404
    assert requests.get(f"{compat.url}/api/system/jobs/{job_id}", timeout=10,
                        headers={"Shoptet-Access-Token": "nope"}).status_code == 401
    assert requests.get(f"{compat.url}/api/system/jobs", timeout=10).status_code == 401
    assert requests.get(f"{compat.url}/api/system/jobs/{job_id}", timeout=10, headers={
        "Shoptet-Access-Token": compat.keys["bawco"]}).status_code == 404


# -- Starfish -------------------------------------------------------------------------------

def starfish_samples() -> tuple[str, str, dict, str]:
    page = seed("ExecuteJobAsync")
    json_req = re.search(r'^\{ "runID".*\}$', page, re.M).group(0)
    xml_req = re.search(r"^<execJobAsyncRequest .*</execJobAsyncRequest>$", page, re.M).group(0)
    json_resp = json.loads(re.search(r'^\{ "runID".*"started".*\}$', page, re.M).group(0))
    xml_resp = re.search(r"^<execJobAsyncResponse .*$", page, re.M).group(0)
    return json_req, xml_req, json_resp, xml_resp


@pytest.mark.parametrize("kind", ["application/json", "text/json", "application/xml"])
def test_starfish_samples_verbatim_are_refused_naming_starfish_fields(compat, kind):
    json_req, xml_req, _, _ = starfish_samples()
    body = xml_req if kind.endswith("xml") else json_req
    resp = requests.post(f"{compat.url}/v1/ExecuteJobAsync", data=body.encode(), timeout=10,
                         headers={"Content-Type": kind,
                                  "Authorization": f"Bearer {compat.keys['starco']}"})
    # "sample string 1" is no runID a job can be found by again
    assert resp.status_code == 422, resp.text
    assert ["runID"] in [d["loc"] for d in resp.json()["error"]["details"]]


def test_starfish_requests_start_jobs(compat):
    json_req, xml_req, json_resp, xml_resp = starfish_samples()
    auth = {"Authorization": f"Bearer {compat.keys['starco']}"}
    url = f"{compat.url}/v1/ExecuteJobAsync"

    def real(sample: str, run_id: str) -> str:  # the samples' placeholders, made real
        return sample.replace("sample string 10", "").replace("sample string 1", run_id) \
            .replace("sample string 3", "Nightly Load")

    run_id = str(uuid.uuid4())
    resp = requests.post(url, data=real(json_req, run_id), timeout=10,
                         headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == set(json_resp)
    assert resp.json() == {"runID": run_id, "started": True, "error": None}
    job = wait_job(compat, resp.headers["Location"].rsplit("/", 1)[1],
                   ("starco", compat.keys["starco"]))
    assert job["service"] == "echo" and job["runId"] == run_id and job["status"] == "succeeded"
    again = requests.post(url, data=real(json_req, run_id), timeout=10,
                          headers={**auth, "Content-Type": "text/json"})
    assert again.status_code == 200 and again.headers["Location"] == resp.headers["Location"]

    # XML, namespaced as the page's sample: the answer is XML in the page's shape
    run_id = str(uuid.uuid4())
    resp = requests.post(url, data=real(xml_req, run_id).encode(), timeout=10,
                         headers={**auth, "Content-Type": "text/xml"})
    assert resp.status_code == 200, resp.text
    root, expected = ElementTree.fromstring(resp.text), ElementTree.fromstring(xml_resp)
    assert root.tag == expected.tag  # {datacontract namespace}execJobAsyncResponse
    assert sorted(c.tag for c in root) == sorted(c.tag for c in expected)
    ns = expected.tag.split("}")[0] + "}"
    assert root.find(f"{ns}runID").text == run_id and root.find(f"{ns}started").text == "true"

    # XML without the namespace, asking for JSON; and a form body
    bare = re.sub(r' xmlns(:i)?="[^"]*"', "", real(xml_req, str(uuid.uuid4())))
    resp = requests.post(url, data=bare.encode(), timeout=10, headers={
        **auth, "Content-Type": "application/xml", "Accept": "application/json"})
    assert resp.status_code == 200 and resp.json()["started"] is True, resp.text
    run_id = str(uuid.uuid4())
    resp = requests.post(url, data={"runID": run_id, "projectID": "p", "jobID": "echo",
                                    "loggingLevel": "2", "argument": "42"},
                         headers=auth, timeout=10)
    assert resp.status_code == 200 and resp.json()["runID"] == run_id, resp.text


# -- IBM BAW --------------------------------------------------------------------------------

def test_baw_outputs_body_is_the_result_signed(compat):
    auth = {"Authorization": f"Bearer {compat.keys['bawco']}"}
    with Receiver([200]) as rx:
        for job in ({"service": "echo", "input": {"answer": 42}},
                    {"service": "snapshot", "input": {"rows": 3}}):
            resp = requests.post(f"{compat.url}/v1/jobs", headers=auth, timeout=10,
                                 json={**job, "callbackUrl": rx.url})
            assert resp.status_code == 202, resp.text
        until(lambda: len(rx.requests) == 2, what="both webhooks")
    by_type = {r["headers"]["Content-Type"]: r for r in rx.requests}
    assert json.loads(by_type["application/json"]["body"]) == {"answer": 42}
    csv_lines = by_type["text/csv"]["body"].strip().splitlines()
    assert len(csv_lines) == 4  # a header and the three rows
    for r in rx.requests:  # the same signature headers as the event, over the body sent
        h = r["headers"]
        at = datetime.fromtimestamp(int(h["webhook-timestamp"]), UTC)
        expected = Webhook(compat.secrets["bawco"]).sign(h["webhook-id"], at, r["body"])
        assert expected in h["webhook-signature"].split(" ")
