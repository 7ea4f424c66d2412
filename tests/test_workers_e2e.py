"""Workers for real: the local runner (`python -m localrunner`) and `jobgate worker`
processes, each a subprocess, talking HTTP as they would on AWS (docs/workers.md).

One runner for the module with no local workers (`JOBGATE_LOCAL_WORKERS=0`) and a short
lease; each test starts the workers it needs and kills them in a finalizer, and cancels
whatever job it leaves unfinished, so no test's job reaches another test's worker. Every
wait polls a state (the job, a worker's output, a process) with a generous deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from localrunner.live import PROJECT, LiveRunner, live_runner
from localrunner.receiver import Receiver

WORKER_KEY = "jgw_e2e-worker-key-0123456789abcdef"
LEASE_SECONDS = 5  # short, so a dead worker's job comes back within seconds
REPORT = "examples.worker.report:report"
DEADLINE = 60.0  # generous: a loaded 2-core machine may be slow, never wrong
TERMINAL = {"succeeded", "failed", "canceled"}


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Workers:
    """`jobgate worker` processes of one test; `kill_all` is its finalizer."""

    url: str
    tmp: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *, handler: str = REPORT, grace: float = 30) -> str:
        out = (self.tmp / f"{name}.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "JOBGATE_"))}
        env.update(JOBGATE_URL=self.url, JOBGATE_WORKER_KEY=WORKER_KEY, PYTHONUNBUFFERED="1")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "jobgate", "worker", "--service", "report", "--handler",
             handler, "--worker-id", name, "--grace", str(grace), "--concurrency", "2"],
            cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        out.close()
        self.wait_output(name, "claiming report")
        return name

    def output(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def wait_output(self, name: str, text: str) -> str:
        until(lambda: text in self.output(name) or self.procs[name].poll() is not None,
              f"{name} to log {text!r}")
        assert text in self.output(name), self.output(name)
        return self.output(name)

    def signal(self, name: str, signum: int) -> None:
        self.procs[name].send_signal(signum)

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def runner() -> Iterator[LiveRunner]:
    with live_runner(JOBGATE_LOCAL_WORKERS="0", JOBGATE_WORKER_KEY=WORKER_KEY,
                     JOB_LEASE_SECONDS=str(LEASE_SECONDS)) as live:
        yield live


@pytest.fixture
def workers(runner: LiveRunner, tmp_path: Path) -> Iterator[Workers]:
    ws = Workers(runner.url, tmp_path)
    try:
        yield ws
    finally:
        ws.kill_all()


@pytest.fixture
def jobs(runner: LiveRunner) -> Iterator[Client]:
    client = Client(runner)
    try:
        yield client
    finally:
        client.cancel_unfinished()


class Client:
    """The tenant's side: submit over HTTP, poll, download; remembers its jobs."""

    def __init__(self, runner: LiveRunner):
        self.runner = runner
        self.headers = {"Authorization": f"Bearer {runner.api_key}"}
        self.ids: list[str] = []

    def submit(self, seconds: float = 2, steps: int = 4, **extra: Any) -> str:
        resp = requests.post(f"{self.runner.url}/v1/jobs", headers=self.headers, timeout=10,
                             json={"service": "report",
                                   "input": {"seconds": seconds, "steps": steps}, **extra})
        assert resp.status_code == 202, resp.text
        self.ids.append(resp.json()["jobId"])
        return self.ids[-1]

    def get(self, job_id: str) -> dict[str, Any]:
        resp = requests.get(f"{self.runner.url}/v1/jobs/{job_id}", headers=self.headers,
                            timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait(self, job_id: str, check: Callable[[dict[str, Any]], bool], what: str
             ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def probe() -> bool:
            seen.update(self.get(job_id))
            return check(seen)

        until(probe, f"job {job_id} {what} (last seen {seen}); runner:\n{self.runner.log()}")
        return dict(seen)

    def wait_end(self, job_id: str) -> dict[str, Any]:
        return self.wait(job_id, lambda j: j["status"] in TERMINAL, "to end")

    def result(self, job: dict[str, Any]) -> requests.Response:
        download = requests.get(job["resultUrl"], timeout=30)  # presigned: no credentials
        assert download.status_code == 200
        return download

    def cancel(self, job_id: str) -> None:
        requests.post(f"{self.runner.url}/v1/jobs/{job_id}/cancel", headers=self.headers,
                      timeout=10)

    def cancel_unfinished(self) -> None:
        for job_id in self.ids:
            if self.get(job_id)["status"] not in TERMINAL:
                self.cancel(job_id)


def until(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def full_log(runner: LiveRunner) -> str:
    return runner.output.read_text(errors="replace")


def running_with_progress(job: dict[str, Any]) -> bool:
    return job["status"] == "running" and (job.get("progress") or {}).get("percent", 0) > 0


# -- the whole path ------------------------------------------------------------------------------

def test_a_report_job_runs_in_a_worker_with_progress_result_and_webhook(
        runner: LiveRunner, workers: Workers, jobs: Client) -> None:
    workers.start("w-main")
    with Receiver([200]) as rx:
        job_id = jobs.submit(seconds=4, steps=8, callbackUrl=rx.url)
        percents: list[float] = []

        def progress(job: dict[str, Any]) -> bool:
            if job["status"] == "running" and job.get("progress"):
                pct = job["progress"]["percent"]
                if not percents or pct != percents[-1]:
                    percents.append(pct)
            return job["status"] in TERMINAL

        job = jobs.wait(job_id, progress, "to end")
        until(lambda: len(rx.requests) >= 1, "the webhook")
    assert job["status"] == "succeeded", job
    assert len(percents) >= 2 and percents == sorted(percents) and percents[0] < 100, percents
    assert job["attempts"] == 1 and job["variables"] == {"STEP": "8"}
    assert job["progress"]["percent"] == 100.0 and job["resultType"] == "application/json"
    assert jobs.result(job).json() == {"seconds": 4, "steps": 8, "worker": "w-main"}
    event = json.loads(rx.requests[0]["body"])
    assert event["data"]["jobId"] == job_id and event["data"]["status"] == "succeeded"
    assert f"job {job_id} succeeded" in workers.wait_output("w-main", f"job {job_id} succeeded")


def test_worker_answers_carry_the_servers_date(runner: LiveRunner) -> None:
    # The worker measures its lease as leaseExpiresAt minus the answer's Date header.
    resp = requests.post(f"{runner.url}/v1/worker/claim", timeout=10,
                         headers={"Authorization": f"Bearer {WORKER_KEY}"},
                         json={"services": ["report"], "waitSeconds": 0})
    assert resp.status_code == 204 and resp.headers.get("Date")


def test_a_worker_killed_mid_job_loses_nothing(
        runner: LiveRunner, workers: Workers, jobs: Client) -> None:
    workers.start("w-doomed")
    job_id = jobs.submit(seconds=3, steps=6)
    jobs.wait(job_id, running_with_progress, "to run with progress")
    workers.signal("w-doomed", signal.SIGKILL)  # no goodbye: its lease simply stops
    workers.procs["w-doomed"].wait(10)
    workers.start("w-heir")
    job = jobs.wait_end(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert jobs.result(job).json()["worker"] == "w-heir"


def test_a_canceled_jobs_worker_stops_and_reports_nothing_more(
        runner: LiveRunner, workers: Workers, jobs: Client) -> None:
    workers.start("w-cancel")
    job_id = jobs.submit(seconds=30, steps=30)
    jobs.wait(job_id, running_with_progress, "to run with progress")
    jobs.cancel(job_id)
    out = workers.wait_output("w-cancel", f"job {job_id} canceled (nothing reported)")
    assert f"job {job_id} canceled by the client" in out
    job = jobs.get(job_id)
    assert job["status"] == "canceled" and "resultUrl" not in job
    calls = [line for line in full_log(runner).splitlines() if f"/v1/worker/jobs/{job_id}/" in line]
    assert not any("/complete" in c or "/fail" in c for c in calls), calls
    assert workers.procs["w-cancel"].poll() is None  # the worker goes on with other jobs
    again = jobs.submit(seconds=1, steps=1)
    assert jobs.wait_end(again)["status"] == "succeeded"


def test_a_large_result_goes_through_the_presigned_put(
        runner: LiveRunner, workers: Workers, jobs: Client) -> None:
    from tests.worker_handlers import LARGE

    workers.start("w-large", handler="tests.worker_handlers:large_report")
    job_id = jobs.submit(seconds=1, steps=1)
    job = jobs.wait_end(job_id)
    assert job["status"] == "succeeded", job
    assert job["resultSize"] > LARGE and job["resultType"] == "application/json"
    body = jobs.result(job).json()
    assert body["worker"] == "w-large" and len(body["padding"]) == LARGE
    assert f"/v1/worker/jobs/{job_id}/complete" in full_log(runner)


# -- stopping a worker ----------------------------------------------------------------------------

def test_sigterm_lets_the_running_job_finish_and_claims_nothing_more(
        runner: LiveRunner, workers: Workers, jobs: Client) -> None:
    workers.start("w-term", grace=60)
    job_id = jobs.submit(seconds=3, steps=6)
    jobs.wait(job_id, running_with_progress, "to run with progress")
    workers.signal("w-term", signal.SIGTERM)
    workers.wait_output("w-term", "no more claims")
    later = jobs.submit(seconds=1, steps=1)  # submitted after the SIGTERM: not for this worker
    proc = workers.procs["w-term"]
    until(lambda: proc.poll() is not None, "w-term to exit")
    assert proc.returncode == 0, workers.output("w-term")
    job = jobs.get(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 1, job
    # Not run here: at most handed straight back, if a long poll under way at the SIGTERM
    # got it. (Whether it is still queued is not this worker's to say: a worker SIGKILLed by
    # an earlier test leaves its long poll running on the server for up to 20 s, and that
    # poll may claim it; its lease then lapses, as for any dead worker.)
    out = workers.output("w-term")
    assert f"job {later} report attempt" not in out, out
    assert jobs.get(later)["status"] in ("queued", "running")


def test_a_job_past_the_grace_goes_back_without_using_an_attempt(
        runner: LiveRunner, workers: Workers, jobs: Client) -> None:
    workers.start("w-hasty", grace=0)
    job_id = jobs.submit(seconds=30, steps=30)
    jobs.wait(job_id, running_with_progress, "to run with progress")
    workers.signal("w-hasty", signal.SIGTERM)
    until(lambda: workers.procs["w-hasty"].poll() is not None, "w-hasty to exit")
    back = jobs.get(job_id)
    assert back["status"] == "queued" and back["error"]["code"] == "worker_shutdown", back
    assert back["attempts"] == 0  # given back: a deploy does not use up the job's attempts
    jobs.cancel(job_id)


# -- `make run` ------------------------------------------------------------------------------------

def test_make_run_starts_a_worker_that_finishes_report_jobs() -> None:
    with live_runner() as live:  # JOBGATE_LOCAL_WORKERS unset: one local worker
        jobs = Client(live)
        job = jobs.wait_end(jobs.submit(seconds=1, steps=2))
        assert job["status"] == "succeeded", (job, live.log())
        assert jobs.result(job).json()["steps"] == 2
        children = _children(live.proc.pid)
        assert any("jobgate worker" in cmd for cmd in children.values()), children
    gone = [pid for pid, cmd in children.items() if "jobgate worker" in cmd]
    until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in gone),
          "the runner's workers to stop with it", timeout=30)


def _children(pid: int) -> dict[int, str]:
    """The runner's child processes and their command lines (Linux /proc)."""
    out = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if ppid == pid:
            out[int(proc.name)] = cmd
    return out
