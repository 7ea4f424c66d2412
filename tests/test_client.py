"""The Python SDK (`jobgate`) and its CLI against the real local runner (a subprocess).

Needs the client installed in the venv (`pip install -e client`)."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

jobgate = pytest.importorskip("jobgate", reason="the client is not installed: pip install -e client")

from jobgate import (  # noqa: E402
    Client,
    Conflict,
    ConnectionFailed,
    Job,
    JobgateError,
    NotFound,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
    WebhookVerificationFailed,
    verify_webhook,
)

from localrunner.live import LiveRunner, free_port, live_runner  # noqa: E402

UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
NOT_YET = "route not yet implemented"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveRunner]:
    with live_runner(JOB_MAX_ATTEMPTS="1") as runner:  # a failing job fails at once
        yield runner


@pytest.fixture
def sdk(live: LiveRunner) -> Iterator[Client]:
    with Client(live.url, live.api_key) as client:
        yield client


def wait_for(predicate: Any, timeout: float = 15.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(step)


def running(sdk: Client, job: Job) -> Job:
    return wait_for(lambda: (j := sdk.get(job)).status == "running" and j)


# -- SDK -----------------------------------------------------------------------------------

def test_health_and_services(sdk: Client) -> None:
    assert sdk.health() == {"status": "ok"}
    services = {s.name: s for s in sdk.services()}
    assert {"echo", "sleep"} <= set(services)
    sleep = services["sleep"]
    assert sleep.enabled and sleep.status_variables == ["STEP"]
    assert sleep.input_schema["type"] == "object" and sleep.timeout_seconds > 0


def test_submit_wait_and_download(sdk: Client, tmp_path: Path) -> None:
    job = sdk.submit("echo", {"hello": "world"})
    assert isinstance(job, Job) and job.status == "queued" and not job.finished
    assert job.replayed is False and job.retry_after is not None
    done = job.wait(timeout=30)
    assert done.succeeded and done.job_id == job.job_id
    assert done.result_type == "application/json" and done.result_url
    assert json.loads(sdk.download_result(done)) == {"hello": "world"}
    path = sdk.download_result(done.job_id, tmp_path / "out.json")
    assert path == tmp_path / "out.json" and json.loads(path.read_bytes()) == {"hello": "world"}
    assert not list(tmp_path.glob("*.part"))
    assert isinstance(sdk.log(done), str)
    assert done.to_dict()["jobId"] == done.job_id


def test_wait_reports_progress_and_honours_retry_after(sdk: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    import jobgate.client as module

    delays: list[float] = []
    seen: list[Job] = []
    real_get = sdk.get

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        time.sleep(seconds)

    def get(job_id: Any) -> Job:
        job = real_get(job_id)
        seen.append(job)
        return job

    monkeypatch.setattr(module, "_sleep", sleep)
    monkeypatch.setattr(sdk, "get", get)
    job = sdk.submit("sleep", {"seconds": 2, "steps": 4})
    calls: list[Job] = []
    done = job.wait(timeout=30, on_progress=calls.append)

    assert done.succeeded and done.percent == 100.0 and done.variables == {"STEP": "4"}
    # Each poll waited what the previous answer's Retry-After said.
    expected = [job.retry_after] + [j.retry_after for j in seen[:-1]]
    assert delays == [max(0.2, d or 1.0) for d in expected]
    # on_progress: only on a change, the last call is the finished job.
    assert calls and calls[-1].status == "succeeded"
    states = [(c.status, c.progress) for c in calls]
    assert all(a != b for a, b in zip(states, states[1:], strict=False))
    percents = [c.percent or 0.0 for c in calls]
    assert percents == sorted(percents)
    assert len(seen) >= len(calls)


def test_wait_timeout_keeps_the_last_state(sdk: Client) -> None:
    job = sdk.submit("sleep", {"seconds": 20, "steps": 20})
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as err:
        job.wait(timeout=1.5)
    assert time.monotonic() - started < 5
    assert err.value.job.job_id == job.job_id and err.value.job.status in ("queued", "running")
    assert isinstance(err.value, TimeoutError) and isinstance(err.value, JobgateError)
    sdk.cancel(job)


def test_errors_are_typed(live: LiveRunner, sdk: Client) -> None:
    with pytest.raises(NotFound) as err:
        sdk.get(UNKNOWN_ID)
    assert (err.value.status, err.value.code) == (404, "not_found") and err.value.message
    with pytest.raises(NotFound) as err:
        sdk.submit("no-such-service")
    assert err.value.code == "unknown_service"
    with pytest.raises(ValidationFailed) as err:
        sdk.submit("sleep", {"seconds": -1})
    assert err.value.status == 422
    assert any("seconds" in [str(p) for p in d.get("loc", [])] for d in err.value.details)
    assert "seconds" in str(err.value)
    with Client(live.url, "not-a-key") as bad, pytest.raises(Unauthorized) as err:
        bad.services()
    assert err.value.status == 401 and err.value.code == "unauthorized"


def test_connection_failed_is_typed() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", "key") as client, \
            pytest.raises(ConnectionFailed) as err:
        client.health()
    assert err.value.status is None and err.value.code == "connection_error"


def test_client_needs_url_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBGATE_URL", raising=False)
    monkeypatch.delenv("JOBGATE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="JOBGATE_URL"):
        Client()
    with pytest.raises(ValueError, match="JOBGATE_API_KEY"):
        Client("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="http"):
        Client("ftp://x", "k")
    monkeypatch.setenv("JOBGATE_URL", "http://127.0.0.1:1/api/")
    monkeypatch.setenv("JOBGATE_API_KEY", "k")
    with Client() as client:
        assert client.url == "http://127.0.0.1:1/api"


def test_cancel_and_delete(sdk: Client) -> None:
    job = sdk.submit("sleep", {"seconds": 30, "steps": 30})
    running(sdk, job)
    with pytest.raises(Conflict) as err:
        sdk.delete(job)
    assert err.value.code == "job_not_finished"
    canceled = sdk.cancel(job)
    assert canceled.status == "canceled" and canceled.finished
    with pytest.raises(Conflict) as err:
        job.cancel()
    assert err.value.status == 409 and err.value.code == "job_finished"
    assert sdk.get(job).status == "canceled"
    sdk.delete(job)
    with pytest.raises(NotFound):
        sdk.get(job)


def test_list_follows_cursors(sdk: Client) -> None:
    ids = [sdk.submit("echo", {"n": i}).job_id for i in range(3)]
    newest = [j.job_id for j in sdk.list(service="echo", limit=3, page_size=1)]
    assert newest == ids[::-1]
    every = [j.job_id for j in sdk.list(page_size=2)]
    assert len(every) == len(set(every)) and set(ids) <= set(every)
    assert all(j.service == "echo" for j in sdk.list(service="echo", page_size=100))
    for j in sdk.list(status="queued", page_size=50):
        assert j.status == "queued"


def test_run_id_is_idempotent(sdk: Client) -> None:
    run_id = str(uuid.uuid4())
    first = sdk.submit("echo", {"a": 1}, run_id=run_id)
    again = sdk.submit("echo", {"a": 1}, run_id=run_id)
    assert first.replayed is False and again.replayed is True
    assert again.job_id == first.job_id and again.run_id == run_id
    with pytest.raises(Conflict) as err:
        sdk.submit("echo", {"a": 2}, run_id=run_id)
    assert err.value.code == "run_id_conflict"


def test_failed_job_has_error_and_no_result(sdk: Client) -> None:
    done = sdk.submit("sleep", {"seconds": 0.1, "steps": 1, "fail": True}).wait(timeout=60)
    assert done.status == "failed" and done.error and done.error.code
    with pytest.raises(NotFound) as err:
        sdk.download_result(done)
    assert err.value.code == "no_result"


def test_basic_auth_and_tenant_isolation(live: LiveRunner, sdk: Client) -> None:
    job = sdk.submit("echo", {})
    with Client(live.url, live.api_key, tenant="dev") as basic:
        assert basic.get(job).job_id == job.job_id
    with Client(live.url, live.api_key, tenant="other") as wrong_tenant, pytest.raises(Unauthorized):
        wrong_tenant.get(job)
    with Client(live.url, live.other_key) as other, pytest.raises(NotFound):
        other.get(job)


def test_job_ids_cannot_escape_their_path_segment(sdk: Client) -> None:
    with pytest.raises(JobgateError) as err:
        sdk.get("../health")
    assert err.value.status in (403, 404)  # never the health route's 200


# -- webhooks ------------------------------------------------------------------------------

def _signed(secret: str, body: str, msg_id: str = "evt_1", at: float | None = None) -> dict[str, str]:
    from datetime import datetime, timezone

    from standardwebhooks import Webhook

    when = datetime.fromtimestamp(at if at is not None else time.time(), tz=timezone.utc)  # noqa: UP017
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, when, body)}


def test_verify_webhook() -> None:
    from localrunner.live import OTHER_SECRET, WEBHOOK_SECRET

    body = json.dumps({"type": "job.finished", "timestamp": "2026-01-01T00:00:00.000Z",
                       "data": {"jobId": UNKNOWN_ID, "service": "echo", "status": "succeeded",
                                "createdAt": "2026-01-01T00:00:00.000Z"}}, separators=(",", ":"))
    headers = _signed(WEBHOOK_SECRET, body)
    event = verify_webhook(headers, body.encode(), WEBHOOK_SECRET)
    assert (event.id, event.type, event.job.job_id, event.job.status) == \
        ("evt_1", "job.finished", UNKNOWN_ID, "succeeded")
    upper = {k.upper(): v for k, v in headers.items()}
    assert verify_webhook(list(upper.items()), body, [OTHER_SECRET, WEBHOOK_SECRET]).id == "evt_1"

    rejected: list[tuple[Any, Any, Any]] = [
        (headers, body.replace("succeeded", "failed"), WEBHOOK_SECRET),  # tampered body
        (headers, body, OTHER_SECRET),  # another tenant's secret
        (_signed(WEBHOOK_SECRET, body, at=time.time() - 3600), body, WEBHOOK_SECRET),  # stale
        ({**headers, "webhook-signature": "v1"}, body, WEBHOOK_SECRET),  # garbled
        ({**headers, "webhook-signature": "v1,!!!"}, body, WEBHOOK_SECRET),
        ({"webhook-id": "evt_1"}, body, WEBHOOK_SECRET),  # headers missing
        (headers, b"\xff\xfe", WEBHOOK_SECRET),
    ]
    for hdrs, data, secret in rejected:
        with pytest.raises(WebhookVerificationFailed):
            verify_webhook(hdrs, data, secret)
    with pytest.raises(ValueError):
        verify_webhook(headers, body, "whsec_not base64!")


class _Receiver:
    """A webhook receiver on 127.0.0.1 (the local runner allows private callbacks)."""

    def __init__(self) -> None:
        self.requests: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                data = self.rfile.read(int(self.headers.get("content-length") or 0))
                received.put((dict(self.headers.items()), data))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/jobs?corr=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next(self, timeout: float = 20.0) -> tuple[dict[str, str], bytes]:
        return self.requests.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    try:
        yield r
    finally:
        r.close()


def test_webhook_is_delivered_verified_and_recorded(live: LiveRunner, sdk: Client,
                                                    receiver: _Receiver) -> None:
    job = sdk.submit("echo", {"x": 1}, callback_url=receiver.url)
    assert job.callback and job.callback.url == receiver.url
    headers, body = receiver.next()
    event = verify_webhook(headers, body, live.webhook_secret)
    assert event.type == "job.finished" and event.job.job_id == job.job_id
    assert event.job.status == "succeeded"

    deliveries = wait_for(lambda: sdk.deliveries(job))
    assert deliveries[0].attempt == 1 and deliveries[0].status_code == 204
    assert deliveries[0].error is None and deliveries[0].duration_ms >= 0
    done = wait_for(lambda: (j := sdk.get(job)).callback and j.callback.state == "delivered" and j)
    assert done.callback.attempts == 1

    again = sdk.redeliver(job)
    assert again.job_id == job.job_id
    headers2, body2 = receiver.next()
    assert headers2["webhook-id"] == headers["webhook-id"] and body2 == body  # the same event
    assert len(wait_for(lambda: len(sdk.deliveries(job)) >= 2 and sdk.deliveries(job))) == 2


def test_redeliver_without_callback_is_a_conflict(sdk: Client) -> None:
    done = sdk.submit("echo", {}).wait(timeout=30)
    assert sdk.deliveries(done) == []
    with pytest.raises(Conflict):
        sdk.redeliver(done)


# -- documents (POST /v1/services/{service}/jobs) and Prefer: wait ---------------------------

def test_submit_content_upload(sdk: Client, tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text("id,amount\n1,10\n2,20\n3,30\n")
    job = sdk.submit("dataload", content=csv, variables={"MAX": 2}, run_id=str(uuid.uuid4()),
                     log_level=2)
    assert job.status == "queued" and job.run_id
    done = job.wait(timeout=60)
    assert done.succeeded, done.error
    assert json.loads(sdk.download_result(done))["rows"] == 2
    raw = sdk.submit("dataload", content=b'[{"a": 1}]', content_type="application/json").wait(timeout=60)
    assert json.loads(sdk.download_result(raw))["rows"] == 1


def test_prefer_wait_answers_with_the_finished_job(sdk: Client) -> None:
    done = sdk.submit("echo", {"fast": True}, wait=10)
    assert done.succeeded and done.retry_after is None  # 200, no polling needed
    slow = sdk.submit("sleep", {"seconds": 5}, wait=1)
    assert not slow.finished and slow.retry_after is not None  # 202 after the wait
    sdk.cancel(slow)


def test_openapi_route(live: LiveRunner) -> None:  # app.py: GET /openapi.json
    import httpx
    from openapi_spec_validator import validate

    resp = httpx.get(f"{live.url}/openapi.json")
    assert resp.status_code == 200
    doc = resp.json()
    validate(doc)
    assert doc["servers"][0]["url"] == live.url
    assert "/v1/jobs/{jobId}" in doc["paths"]


# -- CLI -----------------------------------------------------------------------------------

def cli(live: LiveRunner, *args: str, env: dict[str, str] | None = None,
        stdin: bytes | None = None, timeout: float = 90) -> subprocess.CompletedProcess[bytes]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("JOBGATE_")}
    base.update(JOBGATE_URL=live.url, JOBGATE_API_KEY=live.api_key, COLUMNS="120")
    if env is not None:
        base.update(env)
        base = {k: v for k, v in base.items() if v}
    result = subprocess.run([sys.executable, "-m", "jobgate", *args], env=base, input=stdin,
                            capture_output=True, timeout=timeout, check=False)
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobgate: error: "), lines
    return lines[0]


def test_cli_console_script() -> None:
    script = Path(sys.executable).parent / "jobgate"
    assert script.exists(), "pip install -e client installs the `jobgate` command"
    out = subprocess.run([str(script), "--version"], capture_output=True, check=True, timeout=30)
    assert out.stdout.decode().startswith("jobgate ")


def test_cli_services(live: LiveRunner) -> None:
    result = cli(live, "services", "--json")
    assert result.returncode == 0
    assert {"echo", "sleep"} <= {s["name"] for s in json.loads(result.stdout)}
    human = cli(live, "services")
    assert human.returncode == 0 and b"sleep" in human.stdout and b"SERVICE" in human.stdout


def test_cli_submit_wait_prints_the_result(live: LiveRunner) -> None:
    result = cli(live, "submit", "echo", "--data", '{"x": [1, 2]}', "--wait")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"x": [1, 2]}
    assert b"succeeded" in result.stderr  # progress lines (stderr is not a terminal)


def test_cli_submit_wait_with_progress_to_a_file(live: LiveRunner, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = cli(live, "submit", "sleep", "--data", '{"seconds": 1.5, "steps": 3}', "--wait",
                 "--output", str(out), "--var", "A=1", "--log-level", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert json.loads(out.read_bytes())["slept"] == 1.5
    progress = result.stderr.decode()
    assert "running" in progress and "succeeded 100%" in progress


def test_cli_job_lifecycle(live: LiveRunner, tmp_path: Path) -> None:
    data = tmp_path / "input.json"
    data.write_text('{"hello": "cli"}')
    submitted = cli(live, "submit", "echo", "--input", str(data), "--json")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    job_id = job["jobId"]
    assert job["status"] == "queued"

    waited = cli(live, "wait", job_id, "--json", "--quiet")
    assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "succeeded"
    status = cli(live, "status", job_id, "--json")
    assert json.loads(status.stdout)["status"] == "succeeded"
    human = cli(live, "status", job_id).stdout.decode()
    assert job_id in human and "succeeded" in human and "application/json" in human

    result = cli(live, "result", job_id)
    assert json.loads(result.stdout) == {"hello": "cli"}
    out = tmp_path / "r.json"
    saved = cli(live, "result", job_id, "--output", str(out), "--json")
    assert json.loads(saved.stdout)["bytes"] == out.stat().st_size
    assert json.loads(out.read_bytes()) == {"hello": "cli"}

    log = cli(live, "log", job_id, "--json")
    assert log.returncode == 0 and json.loads(log.stdout)["jobId"] == job_id
    assert cli(live, "log", job_id).returncode == 0

    listed = cli(live, "list", "--service", "echo", "--limit", "2", "--json")
    jobs = json.loads(listed.stdout)
    assert 1 <= len(jobs) <= 2 and jobs[0]["jobId"] == job_id
    table = cli(live, "list", "--limit", "5").stdout.decode()
    assert table.startswith("JOB") and job_id in table
    assert cli(live, "list", "--all", "--json").returncode == 0

    deleted = cli(live, "delete", job_id)
    assert deleted.returncode == 0 and job_id in deleted.stdout.decode()
    gone = cli(live, "status", job_id)
    assert gone.returncode == 1 and "404" in one_line_error(gone)


def test_cli_cancel(live: LiveRunner) -> None:
    job_id = cli(live, "submit", "sleep", "--data", '{"seconds": 30}').stdout.decode().strip()
    canceled = cli(live, "cancel", job_id)
    assert canceled.returncode == 0 and canceled.stdout.decode().split() == [job_id, "canceled"]
    again = cli(live, "cancel", job_id)
    assert again.returncode == 1 and "409" in one_line_error(again)


def test_cli_failed_job_under_wait(live: LiveRunner) -> None:
    result = cli(live, "submit", "sleep", "--data", '{"seconds": 0.1, "steps": 1, "fail": true}',
                 "--wait", "--quiet")
    assert result.returncode == 3 and result.stdout == b""  # 3: the job failed
    assert "failed" in one_line_error(result)


def test_cli_wait_timeout(live: LiveRunner) -> None:
    result = cli(live, "submit", "sleep", "--data", '{"seconds": 30}', "--wait", "--timeout", "1",
                 "--quiet")
    assert result.returncode == 4 and "still" in one_line_error(result)  # 4: wait timed out
    job_id = result.stderr.decode().split("job ", 1)[1].split()[0]
    assert f"`jobgate wait {job_id}` resumes" in result.stderr.decode()
    assert cli(live, "cancel", job_id).returncode == 0


def _as_in_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it. A suite started in the background of a
    non-interactive shell (as CI may start it) ignores SIGINT, and every child inherits
    that: Python then installs no KeyboardInterrupt handler and the signal never arrives."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cli_interrupted_wait(live: LiveRunner) -> None:
    import os
    import signal

    env = {**os.environ, "JOBGATE_URL": live.url, "JOBGATE_API_KEY": live.api_key}
    proc = subprocess.Popen([sys.executable, "-m", "jobgate", "submit", "sleep", "--data",
                             '{"seconds": 30}', "--wait"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=_as_in_a_terminal)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()  # the first progress line: the job exists
        job_id = first.split()[0]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130
    assert b"Traceback" not in err and f"job {job_id} goes on" in err.decode()
    assert cli(live, "cancel", job_id).returncode == 0


@pytest.mark.parametrize(("args", "code", "text"), [
    (["status", UNKNOWN_ID], 1, "HTTP 404 not_found"),
    (["--api-key", "wrong", "services"], 1, "HTTP 401"),
    (["submit", "sleep", "--data", '{"seconds": -5}'], 1, "HTTP 422"),
    (["submit", "no-such-service"], 1, "unknown_service"),
    (["submit", "echo", "--data", "not json"], 2, "not valid JSON"),
    (["submit", "echo", "--data", "[1]"], 2, "JSON object"),
    (["submit", "echo", "--output", "x"], 2, "--wait"),
    (["submit", "echo", "--input", "/nonexistent/input.json"], 2, "cannot read"),
    (["submit", "echo", "--data", "{}", "--input", "x"], 2, ""),
    (["submit", "echo", "--var", "novalue"], 2, ""),
    (["submit"], 2, ""),
    (["list", "--limit", "0"], 2, ""),
    (["frobnicate"], 2, ""),
    ([], 2, ""),
])
def test_cli_errors(live: LiveRunner, args: list[str], code: int, text: str) -> None:
    result = cli(live, *args)
    assert result.returncode == code, result.stderr
    assert text in result.stderr.decode()
    if code == 1:
        one_line_error(result)


def test_cli_configuration_errors(live: LiveRunner) -> None:
    no_url = cli(live, "services", env={"JOBGATE_URL": ""})
    assert no_url.returncode == 2 and "JOBGATE_URL" in one_line_error(no_url)
    no_key = cli(live, "services", env={"JOBGATE_API_KEY": ""})
    assert no_key.returncode == 2 and "JOBGATE_API_KEY" in one_line_error(no_key)
    refused = cli(live, "--url", f"http://127.0.0.1:{free_port()}", "services")
    assert refused.returncode == 1 and "cannot reach" in one_line_error(refused)
    flags = cli(live, "services", "--url", live.url, "--api-key", live.api_key, "--json",
                env={"JOBGATE_URL": "", "JOBGATE_API_KEY": ""})
    assert flags.returncode == 0 and json.loads(flags.stdout)


def test_cli_deliveries(live: LiveRunner, receiver: _Receiver) -> None:
    job_id = cli(live, "submit", "echo", "--data", "{}", "--callback", receiver.url).stdout.decode().strip()
    receiver.next()
    listed = wait_for(lambda: json.loads(cli(live, "deliveries", job_id, "--json").stdout))
    assert listed[0]["statusCode"] == 204
    table = cli(live, "deliveries", job_id).stdout.decode()
    assert table.startswith("ATTEMPT") and "204" in table
    assert cli(live, "redeliver", job_id).returncode == 0
    receiver.next()


def test_cli_content_upload(live: LiveRunner, tmp_path: Path) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text("id,amount\n1,10\n2,20\n")
    result = cli(live, "submit", "dataload", "--content", str(csv), "--var", "MAX=10", "--wait",
                 "--quiet")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == 2
    piped = cli(live, "submit", "dataload", "--content", "-", "--content-type", "text/csv", "--wait",
                "--quiet", stdin=b"a\n1\n2\n3\n")
    assert piped.returncode == 0 and json.loads(piped.stdout)["rows"] == 3


# -- CLI: exit codes, JSON errors, a dropped connection under --wait -------------------------

def test_cli_wait_on_a_canceled_job_exits_3(live: LiveRunner) -> None:
    job_id = cli(live, "submit", "sleep", "--data", '{"seconds": 30}').stdout.decode().strip()
    assert cli(live, "cancel", job_id).returncode == 0
    result = cli(live, "wait", job_id, "--quiet")
    assert result.returncode == 3 and result.stdout == b""
    assert f"job {job_id} canceled" in one_line_error(result)


def json_error(result: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    body = json.loads(lines[0])
    assert set(body) == {"error"} and body["error"]["exitCode"] == result.returncode
    return body["error"]


def test_cli_json_makes_errors_json(live: LiveRunner) -> None:
    missing = cli(live, "status", UNKNOWN_ID, "--json")
    assert missing.returncode == 1 and missing.stdout == b""
    err = json_error(missing)
    assert (err["code"], err["status"]) == ("not_found", 404) and err["message"]

    invalid = cli(live, "submit", "sleep", "--data", '{"seconds": -5}', "--json")
    err = json_error(invalid)
    assert (invalid.returncode, err["code"], err["status"]) == (1, "validation_error", 422)
    assert any("seconds" in d["loc"] for d in err["details"])

    for args in (["submit", "echo", "--data", "not json", "--json"],  # our own usage check
                 ["list", "--limit", "0", "--json"],                   # argparse's
                 ["--json"]):                                          # no command
        usage = cli(live, *args)
        assert usage.returncode == 2 and json_error(usage)["code"] == "usage_error", args

    failed = cli(live, "submit", "sleep", "--data", '{"seconds": 0.1, "steps": 1, "fail": true}',
                 "--wait", "--quiet", "--json")
    assert failed.returncode == 3
    job = json.loads(failed.stdout)  # the job itself still goes to stdout
    err = json_error(failed)
    assert (err["code"], err["jobId"]) == ("job_failed", job["jobId"])

    slow = cli(live, "submit", "sleep", "--data", '{"seconds": 30}', "--wait", "--timeout", "1",
               "--quiet", "--json")
    err = json_error(slow)
    assert (slow.returncode, err["code"]) == (4, "wait_timeout")
    assert cli(live, "cancel", err["jobId"]).returncode == 0


def test_cli_help_has_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from jobgate.cli import main

    def help_of(*args: str) -> str:
        with pytest.raises(SystemExit) as done:
            main([*args, "--help"])
        assert done.value.code == 0
        return capsys.readouterr().out

    for command in ("submit", "wait", "status", "list", "cancel", "delete", "result", "log",
                    "services", "deliveries", "redeliver"):
        out = help_of(command)
        examples = out.split("examples:", 1)[1]
        assert f"jobgate {command}" in examples, command
        assert "3  the job failed or was canceled" in out and "4  --timeout ran out" in out
    top = help_of()
    assert "exit codes:" in top and "jobgate wait ID" in top


def test_cli_result_output_says_what_it_wrote(live: LiveRunner, tmp_path: Path) -> None:
    job_id = cli(live, "submit", "echo", "--data", '{"a": 1}').stdout.decode().strip()
    assert cli(live, "wait", job_id, "--quiet").returncode == 0
    out = tmp_path / "r.json"
    result = cli(live, "result", job_id, "-o", str(out))
    assert result.returncode == 0 and result.stdout == b""
    assert result.stderr.decode().strip() == f"jobgate: wrote {out.stat().st_size} bytes to {out}"
    waited = cli(live, "wait", job_id, "--quiet", "-o", str(tmp_path / "w.json"))
    assert "bytes (application/json) to" in waited.stderr.decode()


def test_cli_submit_data_to_a_content_service_hints_content(live: LiveRunner) -> None:
    result = cli(live, "submit", "dataload", "--data", "{}")
    assert result.returncode == 1
    assert "`jobgate submit dataload --content FILE`" in one_line_error(result)


def test_attempt_notes_say_retrying_instead_of_jumping_back() -> None:
    from jobgate import cli as module

    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    base = {"jobId": UNKNOWN_ID, "service": "sleep", "createdAt": "2026-01-01T00:00:00Z",
            "progress": {"percent": 50.0}}
    between = Job.from_dict({**base, "status": "queued", "attempts": 1, "maxAttempts": 3,
                             "retryAt": "2026-01-01T00:00:04.000Z",
                             "error": {"code": "handler_error", "message": "x"}})
    assert (between.max_attempts, between.retry_at) == (3, "2026-01-01T00:00:04.000Z")
    assert module.describe(between, now) == \
        "retrying attempt 2/3, retrying in 4 s (attempt 1: handler_error)"
    assert module.attempt_note(between, now + 3) == \
        "attempt 2/3, retrying in 1 s (attempt 1: handler_error)"
    assert module.attempt_note(between, now + 60) == \
        "attempt 2/3, retrying in 0 s (attempt 1: handler_error)"  # due: never negative
    assert "50%" not in module.describe(between, now)
    assert "queued" not in module.describe(between, now)
    plain = Job.from_dict({**base, "status": "queued", "attempts": 1,
                           "error": {"code": "timeout", "message": "x"}})
    assert module.attempt_note(plain, now) == "attempt 2, retrying (attempt 1: timeout)"
    second = Job.from_dict({**base, "status": "running", "attempts": 2, "maxAttempts": 3})
    assert module.describe(second, now) == "running 50% attempt 2/3"
    first = Job.from_dict({**base, "status": "running", "attempts": 1, "maxAttempts": 3})
    assert module.describe(first, now) == "running 50%"


def test_the_live_bar_counts_a_retry_down_between_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the note is rendered at each refresh from the job last seen, so the
    delay moves with the clock without a new poll; the ending note keeps its brackets."""
    import io

    import rich.console
    import rich.progress
    from jobgate import cli as module

    now = [1_767_225_600.0]  # 2026-01-01T00:00:00Z
    monkeypatch.setattr(module.time, "time", lambda: now[0])
    out = io.StringIO()
    real_console = rich.console.Console
    monkeypatch.setattr(rich.console, "Console", lambda **kw: real_console(
        file=out, force_terminal=True, no_color=True, width=200))
    bars: list[Any] = []

    class Bar(rich.progress.Progress):
        def __init__(self, *columns: Any, **kw: Any) -> None:
            super().__init__(*columns, **kw)
            bars.append(self)

    monkeypatch.setattr(rich.progress, "Progress", Bar)
    waiting = Job.from_dict({"jobId": UNKNOWN_ID, "service": "sleep", "status": "queued",
                             "createdAt": "2026-01-01T00:00:00Z", "attempts": 1,
                             "maxAttempts": 3, "retryAt": "2026-01-01T00:00:04.000Z",
                             "error": {"code": "handler_error", "message": "[x]"}})
    seen: list[str] = []

    def wait(job: Job, *args: Any, **kw: Any) -> Job:
        for _ in range(2):
            bars[0].refresh()
            seen.append(out.getvalue())
            now[0] += 3  # three seconds later, no new poll
        return Job.from_dict({**waiting.raw, "status": "failed", "attempts": 3})

    monkeypatch.setattr(module, "wait_through_drops", wait)
    assert module.follow(waiting, timeout=None).status == "failed"
    assert "attempt 2/3, retrying in 4 s (attempt 1: handler_error)" in seen[0]
    assert "attempt 2/3, retrying in 1 s (attempt 1: handler_error)" in seen[1][len(seen[0]):]
    assert "handler_error: [x]" in out.getvalue()[len(seen[1]):]


def test_cli_wait_on_a_terminal_names_the_job_and_ends_red(live: LiveRunner) -> None:
    env = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": "", "COLUMNS": "160"}
    ok = cli(live, "submit", "echo", "--data", "{}", "--wait", env=env)
    assert ok.returncode == 0
    job_id = json.loads(cli(live, "list", "--limit", "1", "--json").stdout)[0]["jobId"]
    assert job_id in ok.stderr.decode()  # the job id is on the progress line
    bad = cli(live, "submit", "sleep", "--data", '{"seconds": 0.1, "steps": 1, "fail": true}',
              "--wait", env=env)
    assert bad.returncode == 3
    shown = bad.stderr.decode()
    assert "\x1b[1;31mfailed" in shown and "\x1b[1;32m" not in shown  # red, never green


class _Proxy:
    """A TCP forwarder in front of the runner that a test can cut (every connection closed,
    new ones refused) and restore on the same port: a dropped connection, for real."""

    def __init__(self, target: int) -> None:
        import socket

        self.target, self.port = target, free_port()
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        import socket

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        import socket

        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        with self.lock:
            for conn in self.open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self.open.clear()

    def _accept(self, listener: Any) -> None:
        import socket

        while self.listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (src, dst):
                with contextlib.suppress(OSError):
                    conn.close()


@pytest.fixture
def proxy(live: LiveRunner) -> Iterator[_Proxy]:
    p = _Proxy(int(live.url.rsplit(":", 1)[1]))
    try:
        yield p
    finally:
        p.down()


def _cli_process(url: str, key: str, *args: str) -> subprocess.Popen[bytes]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBGATE_")}
    env.update(JOBGATE_URL=url, JOBGATE_API_KEY=key)
    return subprocess.Popen([sys.executable, "-m", "jobgate", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _read_until(proc: subprocess.Popen[bytes], text: str) -> list[str]:
    """stderr lines up to and including the first one holding `text` (the CLI's own pace)."""
    assert proc.stderr is not None
    lines = []
    while True:
        line = proc.stderr.readline().decode()
        assert line, f"the CLI ended before saying {text!r}: {lines}"
        lines.append(line)
        if text in line:
            return lines


def test_cli_wait_rides_out_a_dropped_connection(live: LiveRunner, proxy: _Proxy) -> None:
    proc = _cli_process(proxy.url, live.api_key, "submit", "sleep", "--data",
                        '{"seconds": 3, "steps": 3}', "--wait")
    try:
        job_id = _read_until(proc, " ")[0].split()[0]
        proxy.down()
        lost = _read_until(proc, "connection lost")[-1]
        assert lost.startswith(job_id) and "retrying in" in lost
        proxy.up()
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["slept"] == 3 and "connection restored" in err.decode()


def test_cli_wait_gives_up_then_jobgate_wait_resumes(live: LiveRunner, proxy: _Proxy) -> None:
    proc = _cli_process(proxy.url, live.api_key, "submit", "sleep", "--data",
                        '{"seconds": 2, "steps": 2}', "--wait", "--reconnect", "3")
    try:
        job_id = _read_until(proc, " ")[0].split()[0]
        proxy.down()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 1
    last = err.decode().strip().splitlines()[-1]
    assert last.startswith("jobgate: error: lost the connection")
    assert f"`jobgate wait {job_id}` resumes" in last
    resumed = cli(live, "wait", job_id, "--quiet")  # straight to the runner: it went on
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["slept"] == 2
