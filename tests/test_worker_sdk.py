"""The worker side of issue 13: `jobgate.Worker` and `jobgate worker` against a fake server
that implements docs/api.md "Workers (v1.1)" in-process (a ThreadingHTTPServer), plus the
`report` example handler with a fake ctx. Time is injected wherever a rule is about time;
the end-to-end tests against the real server live elsewhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jobgate import JobContext, Result, Retry, Worker, WorkerStopped
from jobgate.backoff import IdleSchedule  # the client (`make .venv`): missing fails, never skips

from examples.worker.report import ReportFailed, report

ROOT = Path(__file__).resolve().parent.parent
KEY = "jgw_test_worker_key"
WAIT = 15.0  # the most any test waits for something the worker does


# -- the fake server ---------------------------------------------------------------------------------

class FakeServer:
    """The worker routes with leases, cancel and lease loss, presigned content and result
    URLs, and faults to inject per route: "drop" (no answer) or an HTTP status."""

    def __init__(self, lease_seconds: float = 60.0, max_wait: float = 0.2):
        self.lease_seconds = lease_seconds
        self.max_wait = max_wait  # long polls are cut to this (tests must not wait 20 s)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.queue: list[str] = []
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []
        self.faults: dict[str, list[Any]] = {}  # route -> actions, consumed in order
        self.uploads: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.content_requests: list[dict[str, str]] = []
        self.cond = threading.Condition()
        self.counter = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                server.handle(self, "POST")

            def do_PUT(self) -> None:
                server.handle(self, "PUT")

            def do_GET(self) -> None:
                server.handle(self, "GET")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- test side ---------------------------------------------------------------------------
    def add_job(self, service: str = "report", input: Any = None, *, attempt: int = 1,  # noqa: A002
                log_level: int = 1, content: bytes | None = None,
                content_type: str | None = None, variables: dict[str, str] | None = None) -> str:
        with self.cond:
            self.counter += 1
            job_id = f"job{self.counter:03d}"
            self.jobs[job_id] = {"service": service, "input": input, "attempt": attempt,
                                 "logLevel": log_level, "content": content,
                                 "contentType": content_type, "variables": variables or {},
                                 "status": "queued", "token": None, "cancel": False,
                                 "lost": False}
            self.queue.append(job_id)
            self.cond.notify_all()
        return job_id

    def wait_for(self, predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; events: {self.events}")
                self.cond.wait(left)

    def seen(self, route: str, job_id: str | None = None) -> list[dict[str, Any]]:
        with self.cond:
            return [body for r, j, body in self.events if r == route and (job_id is None or j == job_id)]

    def routes(self, job_id: str) -> list[str]:
        with self.cond:
            return [r for r, j, _ in self.events if j == job_id]

    # -- server side ---------------------------------------------------------------------------
    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        parts = req.path.strip("/").split("/")
        if parts[0] == "presigned":
            return self.presigned(req, method, parts[1], parts[2], raw)
        if req.headers.get("Authorization") != f"Bearer {KEY}":
            return self.answer(req, 401, {"error": {"code": "unauthorized", "message": "no"}})
        body = json.loads(raw) if raw else {}
        if parts[:3] == ["v1", "worker", "claim"]:
            route, job_id = "claim", None
        else:
            route, job_id = parts[4], parts[3]
        with self.cond:
            self.events.append((route, job_id, body))
            self.cond.notify_all()
            fault = self.faults.get(route, []).pop(0) if self.faults.get(route) else None
        if fault == "drop":
            req.close_connection = True
            return None
        if isinstance(fault, int):
            return self.answer(req, fault, {"error": {"code": "injected", "message": "injected"}})
        if route == "claim":
            return self.claim(req, body)
        return self.job_route(req, route, job_id, body)

    def claim(self, req: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + min(float(body.get("waitSeconds", 0)), self.max_wait)
        with self.cond:
            while True:
                found = next((j for j in self.queue if self.jobs[j]["service"] in body["services"]), None)
                if found or time.monotonic() >= deadline:
                    break
                self.cond.wait(deadline - time.monotonic())
            if found is None:
                return self.answer(req, 204, None)
            self.queue.remove(found)
            self.events.append(("claimed", found, {}))
            job = self.jobs[found]
            job.update(status="running", token=f"tok-{found}-{job['attempt']}")
            claim = {"jobId": found, "tenant": "dev", "service": job["service"],
                     "input": job["input"], "variables": job["variables"],
                     "logLevel": job["logLevel"], "attempt": job["attempt"],
                     "resultUploadUrl": f"{self.url}/presigned/result/{found}",
                     "leaseToken": job["token"], "leaseExpiresAt": self.lease_end()}
            if job["content"] is not None:
                claim["contentUrl"] = f"{self.url}/presigned/content/{found}"
        return self.answer(req, 200, claim)

    def job_route(self, req: BaseHTTPRequestHandler, route: str, job_id: str,
                  body: dict[str, Any]) -> None:
        with self.cond:
            job = self.jobs.get(job_id)
            if job is None:
                return self.answer(req, 404, {"error": {"code": "not_found", "message": "no job"}})
            if job["lost"] or body.get("leaseToken") != job["token"] or job["status"] != "running":
                return self.answer(req, 409, {"error": {"code": "lease_lost", "message": "lost"}})
            if route == "heartbeat":
                return self.answer(req, 200, {"leaseExpiresAt": self.lease_end(),
                                               "canceled": job["cancel"]})
            if job["cancel"]:
                return self.answer(req, 409, {"error": {"code": "canceled", "message": "canceled"}})
            job["status"] = "succeeded" if route == "complete" else "failed"
            self.cond.notify_all()
        return self.answer(req, 200, {})

    def presigned(self, req: BaseHTTPRequestHandler, method: str, kind: str, job_id: str,
                  raw: bytes) -> None:
        headers = {k.lower(): v for k, v in req.headers.items()}
        with self.cond:
            if kind == "result" and method == "PUT":
                self.uploads[job_id] = (raw, headers)
                self.events.append(("put", job_id, {"size": len(raw)}))
                self.cond.notify_all()
                fault = self.faults.get("put", []).pop(0) if self.faults.get("put") else None
                if fault:
                    return self.answer(req, fault, None)
                return self.answer(req, 200, None)
            if kind == "content" and method == "GET":
                self.content_requests.append(headers)
                job = self.jobs[job_id]
                return self.answer(req, 200, job["content"], job["contentType"])
        return self.answer(req, 405, None)

    def lease_end(self) -> str:
        end = datetime.now(UTC) + timedelta(seconds=self.lease_seconds)
        return end.isoformat().replace("+00:00", "Z")

    @staticmethod
    def answer(req: BaseHTTPRequestHandler, status: int, body: Any,
               content_type: str | None = None) -> None:
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        req.send_response(status)
        if data or status not in (204,):
            req.send_header("Content-Type", content_type or "application/json")
            req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if data:
            req.wfile.write(data)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


class Running:
    """A Worker on a thread of the test; `stop()` ends it and joins it."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the worker did not stop"


@pytest.fixture
def start(server: FakeServer) -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start_worker(handlers: dict[str, Callable[..., Any]], **kwargs: Any) -> Running:
        kwargs.setdefault("schedule", IdleSchedule(warm_polls=10**9))  # long polls only
        kwargs.setdefault("heartbeat_seconds", 0.05)
        kwargs.setdefault("install_signals", False)
        kwargs.setdefault("grace", 5.0)
        run = Running(Worker(server.url, KEY, handlers, **kwargs))
        running.append(run)
        return run

    yield start_worker
    for run in running:
        if run.thread.is_alive():
            run.stop()


def eventually(predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    """For state the fake server does not see (polls; the timeout is only a safety net)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def done(server: FakeServer, job_id: str) -> Callable[[], bool]:
    return lambda: server.jobs[job_id]["status"] in ("succeeded", "failed")


# -- the lifecycle ---------------------------------------------------------------------------------------

def test_claim_heartbeat_complete_inline(server: FakeServer, start: Callable[..., Running]) -> None:
    seen: dict[str, Any] = {}

    def handler(input: dict[str, Any], ctx: JobContext) -> Any:  # noqa: A002
        seen.update(input=input, job_id=ctx.job_id, variables=ctx.variables,
                    content=ctx.content, content_type=ctx.content_type, worker=ctx.worker_id)
        ctx.log("kept at level 2", level=2)
        ctx.log("dropped: level 3 is above the job's logLevel", level=3)
        ctx.set_variable("STEP", 1)
        ctx.progress(50, "half")
        server.wait_for(lambda: any(b.get("progress") for b in server.seen("heartbeat", job_id)))
        ctx.progress(100, "all")
        return {"answer": 42, "text": "é"}

    job_id = server.add_job("report", {"n": 1}, log_level=2, content=b"a,b\n1,2\n",
                            content_type="text/csv", variables={"MAX": "5"})
    run = start({"report": handler}, worker_id="w-1")
    server.wait_for(done(server, job_id))
    run.stop()

    assert seen == {"input": {"n": 1}, "job_id": job_id, "variables": {"MAX": "5"},
                    "content": b"a,b\n1,2\n", "content_type": "text/csv", "worker": "w-1"}
    assert server.content_requests and "authorization" not in server.content_requests[0]
    (complete,) = server.seen("complete", job_id)
    assert complete == {"leaseToken": f"tok-{job_id}-1", "result": {"answer": 42, "text": "é"}}
    assert server.seen("fail", job_id) == []
    beats = server.seen("heartbeat", job_id)
    assert all(b["leaseToken"] == f"tok-{job_id}-1" for b in beats)
    assert any(b.get("variables") == {"STEP": "1"} for b in beats)
    lines = [line for b in beats for line in b.get("log", [])]
    assert len(lines) == 1 and lines[0].endswith("[medium] kept at level 2")
    # the last progress went out before the result, not after it
    events = [(r, b) for r, j, b in server.events if j == job_id]
    assert events[0][0] == "claimed" and events[-1][0] == "complete"
    last = max(i for i, (r, b) in enumerate(events) if r == "heartbeat" and "progress" in b)
    assert events[last][1]["progress"] == {"percent": 100.0, "message": "all"}


@pytest.mark.parametrize("kind", ["big-json", "result-bytes", "path"])
def test_large_or_binary_results_are_uploaded_then_completed(
        server: FakeServer, start: Callable[..., Running], tmp_path: Path, kind: str) -> None:
    big = {"rows": "x" * 300_000}
    path = tmp_path / "out.csv"
    path.write_bytes(b"id\n" + b"1\n" * 1000)
    value, body, media = {
        "big-json": (big, json.dumps(big, separators=(",", ":")).encode(), "application/json"),
        "result-bytes": (Result(b"\x00\x01binary", "image/png"), b"\x00\x01binary", "image/png"),
        "path": (path, path.read_bytes(), "text/csv"),
    }[kind]
    job_id = server.add_job()
    run = start({"report": lambda _input, _ctx: value})
    server.wait_for(done(server, job_id))
    run.stop()

    data, headers = server.uploads[job_id]
    assert data == body
    assert headers["content-type"] == media and headers["content-length"] == str(len(body))
    assert "authorization" not in headers and "transfer-encoding" not in headers
    assert server.seen("complete", job_id) == [
        {"leaseToken": f"tok-{job_id}-1", "resultUploaded": True, "resultType": media}]
    assert server.routes(job_id).index("put") < server.routes(job_id).index("complete")


def test_handler_exception_fails_the_attempt_with_the_default_retry_delay(
        server: FakeServer, start: Callable[..., Running]) -> None:
    def handler(_input: Any, _ctx: JobContext) -> Any:
        raise ValueError("boom")

    job_id = server.add_job(attempt=2)
    run = start({"report": handler}, retry_base_seconds=2.0)
    server.wait_for(done(server, job_id))
    run.stop()
    assert server.seen("fail", job_id) == [{
        "leaseToken": f"tok-{job_id}-2", "error": {"code": "handler_error", "message": "ValueError: boom"},
        "retryAfterSeconds": 4}]
    assert isinstance(server.seen("fail", job_id)[0]["retryAfterSeconds"], int)  # the API's type
    assert server.seen("complete", job_id) == []


def test_retry_asks_for_its_own_delay(server: FakeServer, start: Callable[..., Running]) -> None:
    def handler(_input: Any, _ctx: JobContext) -> Any:
        raise Retry(90, "the upstream is busy")

    job_id = server.add_job()
    run = start({"report": handler})
    server.wait_for(done(server, job_id))
    run.stop()
    (fail,) = server.seen("fail", job_id)
    assert fail["retryAfterSeconds"] == 90.0
    assert fail["error"] == {"code": "handler_error", "message": "the upstream is busy"}


@pytest.mark.parametrize("how", ["canceled", "lease_lost"])
def test_cancel_or_lease_loss_seen_by_the_handler_and_nothing_more_reported(
        server: FakeServer, start: Callable[..., Running], how: str) -> None:
    stopped = threading.Event()

    def handler(_input: Any, ctx: JobContext) -> Any:
        deadline = time.monotonic() + WAIT
        while not ctx.canceled and time.monotonic() < deadline:
            ctx.progress(10, "working")
            time.sleep(0.01)
        stopped.set()
        return {"late": "result"}  # dropped

    job_id = server.add_job()
    with server.cond:
        server.jobs[job_id]["cancel" if how == "canceled" else "lost"] = True
    run = start({"report": handler})
    assert stopped.wait(WAIT), "the handler never saw ctx.canceled"
    run.stop()
    routes = server.routes(job_id)
    assert routes[0] == "claimed" and routes.count("heartbeat") == 1, routes
    assert "complete" not in routes and "fail" not in routes


def test_complete_without_an_answer_is_retried_until_it_lands(
        server: FakeServer, start: Callable[..., Running]) -> None:
    slept: list[float] = []
    server.faults["complete"] = ["drop", 503, "drop"]
    job_id = server.add_job()
    run = start({"report": lambda _i, _c: {"ok": True}}, sleep=slept.append)
    server.wait_for(done(server, job_id))
    run.stop()
    assert server.routes(job_id).count("complete") == 4
    assert server.jobs[job_id]["status"] == "succeeded"
    retry_sleeps = slept[:3]
    assert len(retry_sleeps) == 3 and retry_sleeps[0] < retry_sleeps[1] < retry_sleeps[2]


def test_complete_is_retried_only_while_the_lease_holds(
        server: FakeServer, start: Callable[..., Running]) -> None:
    """With heartbeats failing too, the worker's lease runs out: it stops retrying then
    (the server re-queues the job as lease_expired) instead of retrying forever."""
    clock = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    server.faults["complete"] = ["drop"] * 1000
    server.faults["heartbeat"] = ["drop"] * 1000
    job_id = server.add_job()
    run = start({"report": lambda _i, _c: {"ok": True}}, sleep=sleep, monotonic=lambda: clock[0],
                heartbeat_seconds=30.0)
    server.wait_for(lambda: server.routes(job_id).count("complete") >= 1)
    eventually(lambda: not run.worker._active)  # the job's thread gave up
    run.stop()
    tries = server.routes(job_id).count("complete")
    assert 3 <= tries < 20
    assert 30.0 < sum(slept) < server.lease_seconds  # retried for most of the lease, not beyond


def test_claims_without_an_answer_are_retried_and_content_is_only_fetched_when_read(
        server: FakeServer, start: Callable[..., Running]) -> None:
    slept: list[float] = []
    server.faults["claim"] = ["drop", 503, "drop"]
    job_id = server.add_job(content=b"unread", content_type="text/plain")
    run = start({"report": lambda _i, _c: {"ok": True}}, sleep=slept.append)
    server.wait_for(done(server, job_id))
    run.stop()
    assert server.jobs[job_id]["status"] == "succeeded"
    assert [r for r, _, _ in server.events[:4]] == ["claim"] * 4
    assert len(slept) >= 3 and slept[0] < slept[1] < slept[2]  # backing off
    assert server.content_requests == []  # the handler never read ctx.content


def test_unknown_worker_key_stops_the_worker(server: FakeServer) -> None:
    worker = Worker(server.url, "jgw_wrong", {"report": lambda _i, _c: None}, install_signals=False)
    with pytest.raises(WorkerStopped) as err:
        worker.run()
    assert err.value.status == 401


def test_remaining_seconds_is_the_runtime_cap_or_the_lease_when_heartbeats_fail() -> None:
    now = [100.0]
    ctx = JobContext({"jobId": "j"}, worker_id="w", runtime_deadline=100.0 + 3600,
                     lease_deadline=160.0, monotonic=lambda: now[0])
    now[0] = 130.0
    assert ctx.remaining_seconds() == 3570.0
    ctx.heartbeat_failed()
    assert ctx.remaining_seconds() == 30.0
    ctx.heartbeat_ok(lease_deadline=190.0)
    assert ctx.remaining_seconds() == 3570.0


def test_a_failed_heartbeat_keeps_its_report_for_the_next_one() -> None:
    ctx = JobContext({"jobId": "j", "logLevel": 3}, worker_id="w", runtime_deadline=1e9,
                     lease_deadline=1e9, monotonic=time.monotonic)
    ctx.log("one", level=3)
    ctx.set_variable("STEP", 1)
    ctx.progress(10)
    report_ = ctx.take_report()
    ctx.progress(20)
    ctx.log("two")
    ctx.restore(report_)  # the request failed
    again = ctx.take_report()
    assert again["progress"] == {"percent": 20.0, "message": None}  # newer wins
    assert again["variables"] == {"STEP": "1"}
    assert [line.rsplit(" ", 1)[1] for line in again["log"]] == ["one", "two"]
    assert ctx.take_report() == {}


# -- idle backoff -----------------------------------------------------------------------------------------

def test_idle_backoff_schedule_and_back_to_long_polls_after_a_job(server: FakeServer) -> None:
    slept: list[float] = []
    worker: Worker

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 5:
            server.add_job()
        if len(slept) == 12:
            worker.stop()

    worker = Worker(server.url, KEY, {"report": lambda _i, _c: {"ok": 1}}, sleep=sleep,
                    install_signals=False, heartbeat_seconds=0.05)
    server.max_wait = 0.0
    run = Running(worker)
    run.thread.join(WAIT)
    assert not run.thread.is_alive()
    waits = [b["waitSeconds"] for b in server.seen("claim")]
    # 3 long polls (one idle minute), then short polls 5, 10, 20, 40, 60 s apart ...
    assert waits[:8] == [20, 20, 20, 0, 0, 0, 0, 0]
    assert slept[:5] == [5.0, 10.0, 20.0, 40.0, 60.0]
    # ... until a job comes: then long polls again, and the backoff starts over
    after_job = waits[8:]
    assert after_job[:3] == [20, 20, 20] and after_job[3] == 0
    assert slept[5:9] == [5.0, 10.0, 20.0, 40.0]
    assert all(s == 60.0 for s in slept[9:])
    assert IdleSchedule().pause(100) == 60.0


# -- the CLI and SIGTERM ----------------------------------------------------------------------------------

def finish_when_told(input: dict[str, Any], ctx: JobContext) -> Any:  # noqa: A002
    """A handler for the CLI test: runs until the file `input["until"]` exists."""
    while not Path(input["until"]).exists():
        if ctx.canceled:
            return None
        time.sleep(0.02)
    return {"finished": input["until"], "worker": ctx.worker_id}


def test_sigterm_finishes_or_fails_running_jobs_within_the_grace(
        server: FakeServer, tmp_path: Path) -> None:
    grace = 5.0
    quick = server.add_job("slow", {"until": str(tmp_path / "quick")})
    stuck = server.add_job("slow", {"until": str(tmp_path / "never")})
    env = {**os.environ, "JOBGATE_URL": server.url, "JOBGATE_WORKER_KEY": KEY,
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobgate", "worker", "--service", "slow", "--handler",
         "tests.test_worker_sdk:finish_when_told", "--concurrency", "2", "--grace", str(grace),
         "--worker-id", "cli-1"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    both_started = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if sum(" started" in x for x in lines) == 2:
                both_started.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert both_started.wait(WAIT), lines  # both handlers are running
        proc.send_signal(signal.SIGTERM)
        signaled = time.monotonic()
        (tmp_path / "quick").touch()
        proc.wait(timeout=grace + WAIT)
        elapsed = time.monotonic() - signaled
        reader.join(WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = "".join(lines)
    assert proc.returncode == 0, stderr
    assert grace - 1.0 < elapsed < grace + 5.0, elapsed  # it did wait for the stuck job
    assert server.seen("complete", quick) == [{"leaseToken": f"tok-{quick}-1", "result": {
        "finished": str(tmp_path / "quick"), "worker": "cli-1"}}]
    (fail,) = server.seen("fail", stuck)
    assert fail["error"]["code"] == "worker_shutdown" and fail["retryAfterSeconds"] == 0
    assert server.seen("complete", stuck) == []
    assert f"job {quick} slow attempt 1 started" in stderr and f"job {quick} succeeded" in stderr
    assert f"job {stuck} not finished within the grace" in stderr


def test_cli_usage_errors_exit_2(server: FakeServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBGATE_")}
    base = [sys.executable, "-m", "jobgate", "worker", "--service", "report"]
    no_key = subprocess.run([*base, "--handler", "examples.worker.report:report", "--url", server.url],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert no_key.returncode == 2 and "JOBGATE_WORKER_KEY" in no_key.stderr
    bad = subprocess.run([*base, "--handler", "examples.worker.nope:report", "--url", server.url,
                          "--worker-key", KEY], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "cannot import examples.worker.nope" in bad.stderr


# -- examples/worker/report.py ------------------------------------------------------------------------------

class FakeCtx:
    def __init__(self, cancel_after_step: int | None = None):
        self.worker_id = "w-7"
        self.events: list[tuple[str, Any]] = []
        self.cancel_after_step = cancel_after_step
        self.step = 0

    def log(self, message: str, level: int = 1) -> None:
        self.events.append(("log", level))

    def progress(self, percent: float, message: str | None = None) -> None:
        self.events.append(("progress", (percent, message)))

    def set_variable(self, name: str, value: object) -> None:
        self.step = int(str(value))
        self.events.append(("var", (name, value)))

    @property
    def canceled(self) -> bool:
        return self.cancel_after_step is not None and self.step >= self.cancel_after_step


def test_report_steps_with_progress_and_step_variable() -> None:
    slept: list[float] = []
    ctx = FakeCtx()
    result = report({"seconds": 8, "steps": 4}, ctx, sleep=slept.append)
    assert result == {"seconds": 8, "steps": 4, "worker": "w-7"}
    assert sum(slept) == 8.0 and max(slept) <= 1.0  # looks at ctx.canceled every second
    assert [e for e in ctx.events if e[0] != "log"] == [
        item for i in range(1, 5) for item in (
            ("var", ("STEP", i)), ("progress", (25.0 * i, f"step {i}/4")))]


def test_report_defaults_fail_and_cancel() -> None:
    slept: list[float] = []
    assert report({}, FakeCtx(), sleep=slept.append) == {"seconds": 60, "steps": 10, "worker": "w-7"}
    assert sum(slept) == 60.0
    ctx = FakeCtx()
    with pytest.raises(ReportFailed):
        report({"seconds": 2, "steps": 2, "fail": True}, ctx, sleep=lambda _s: None)
    assert ("progress", (100.0, "step 2/2")) in ctx.events  # fails after the last step
    ctx = FakeCtx(cancel_after_step=2)
    slept.clear()
    assert report({"seconds": 100, "steps": 10}, ctx, sleep=slept.append) is None
    assert ctx.step == 2 and sum(slept) == 20.0
    with pytest.raises(ValueError):
        report({"seconds": 0}, FakeCtx(), sleep=lambda _s: None)


def test_the_run_deadline_and_the_lease_are_read_on_the_servers_clock() -> None:
    from jobgate.worker import _lease_seconds, _seconds_left

    date = "Wed, 02 Dec 2026 10:00:00 GMT"  # the server's clock, whatever this machine's says
    assert _seconds_left("2026-12-02T11:00:00.000Z", date, 5.0) == 3600.0
    assert _seconds_left(None, date, 5.0) == 5.0
    assert _lease_seconds("2026-12-02T10:01:00.000Z", date) == 59.0
    assert _lease_seconds("garbage", date, default=20.0) == 20.0
