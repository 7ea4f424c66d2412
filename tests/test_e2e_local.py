"""End to end: the real local runner (`python -m localrunner`) as a subprocess, driven over
HTTP: submit, watch progress, download the result through its presigned URL, stop it."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

from localrunner.live import LiveRunner, live_runner


def auth(runner: LiveRunner) -> dict[str, str]:
    return {"Authorization": f"Bearer {runner.api_key}"}


@pytest.fixture(scope="module")
def runner() -> Iterator[LiveRunner]:
    with live_runner() as live:
        yield live


def test_health_and_auth(runner: LiveRunner) -> None:
    resp = requests.get(f"{runner.url}/v1/health", timeout=5)
    assert resp.json() == {"status": "ok"}
    assert requests.get(f"{runner.url}/v1/services", timeout=5).status_code == 401
    resp = requests.get(f"{runner.url}/v1/services", headers=auth(runner), timeout=5)
    assert resp.status_code == 200
    assert "sleep" in resp.text


def test_sleep_job_progress_result_and_download(runner: LiveRunner) -> None:
    resp = requests.post(f"{runner.url}/v1/jobs", headers=auth(runner), timeout=10, json={
        "service": "sleep", "input": {"seconds": 3, "steps": 6, "result": {"hello": "e2e"}},
        "logLevel": 3})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    job_id = job["jobId"]
    assert job["status"] == "queued"
    assert resp.headers["Location"] == f"{runner.url}/v1/jobs/{job_id}"

    seen: list[float] = []
    statuses: list[str] = []
    deadline = time.monotonic() + 120  # a safety net only: the job takes 3 s
    while time.monotonic() < deadline:
        job = requests.get(f"{runner.url}/v1/jobs/{job_id}", headers=auth(runner), timeout=5).json()
        statuses.append(job["status"])
        if job["status"] == "running" and "progress" in job:
            pct = job["progress"]["percent"]
            if not seen or pct != seen[-1]:
                seen.append(pct)
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.15)
    assert job["status"] == "succeeded", (job, runner.log())
    # Whatever progress the polls caught went up (how many values they catch depends on the
    # machine's load: the assertions that matter are on what the job recorded).
    assert seen == sorted(seen) and all(0 < p < 100 for p in seen), seen
    assert statuses[-1] == "succeeded" and set(statuses) <= {"queued", "running", "succeeded"}
    log = requests.get(f"{runner.url}/v1/jobs/{job_id}/log", headers=auth(runner), timeout=5).text
    steps = [ln.rsplit("] ", 1)[1] for ln in log.splitlines() if "] step " in ln]
    assert steps == [f"step {i} done" for i in range(1, 7)], log
    assert job["progress"]["percent"] == 100.0
    assert job["variables"] == {"STEP": "6"}
    assert job["attempts"] == 1
    assert job["duration"] >= 2.9
    assert job["resultType"] == "application/json"

    # The result link (303 to a presigned URL) downloads over plain HTTP, without credentials.
    url = job["resultUrl"]
    assert url.startswith(f"{runner.url}/v1/results/")
    download = requests.get(url, timeout=10)
    assert download.status_code == 200
    assert download.json() == {"slept": 3, "result": {"hello": "e2e"}}
    assert job["resultSize"] == len(download.content)

    resp = requests.get(f"{runner.url}/v1/jobs/{job_id}/result", headers=auth(runner), timeout=5,
                        allow_redirects=False)
    assert resp.status_code == 303
    again = requests.get(resp.headers["Location"], timeout=10)
    assert again.status_code == 200
    assert again.content == download.content


def test_zz_sigterm_stops_cleanly(runner: LiveRunner) -> None:
    """Last in the module (by name and order): the runner stops on SIGTERM with exit code 0."""
    assert runner.proc.poll() is None
    runner.proc.send_signal(signal.SIGTERM)
    try:
        code = runner.proc.wait(60)  # it stops in about a second; 60 s only bounds a hang
    except subprocess.TimeoutExpired:
        pytest.fail(f"the runner did not stop within 60 s of SIGTERM:\n{runner.log()}")
    assert code == 0, runner.log()
    assert "stopping" in runner.log()

