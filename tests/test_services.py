"""Services as a user writes them: discovered modules, declarations the API validates with
(without a handler's imports), honest time limits, Retry, the testing helper, and the
README's wordcount example run end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KEY_A, body

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)

ROOT = Path(__file__).resolve().parent.parent
TENANT = "acme"


# -- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def services_dir(tmp_path: Path) -> Iterator[Path]:
    """An extra directory of chalicelib.services (tests only): a module written there is
    discovered exactly like one in chalicelib/services/."""
    from chalicelib import services

    services.discover()
    before = set(services._REGISTRY)
    extra = tmp_path / "more_services"
    extra.mkdir()
    services.__path__.append(str(extra))
    services._loaded = False  # the next lookup discovers again (at start-up, in production)
    try:
        yield extra
    finally:
        services.__path__.remove(str(extra))
        services._loaded = False
        for name in set(services._REGISTRY) - before:
            services.unregister(name)
        for mod in [m for m, v in sys.modules.items()
                    if str(getattr(v, "__file__", "") or "").startswith(str(extra))]:
            del sys.modules[mod]


@pytest.fixture
def retries(env: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(receipt handle, seconds) of every Dispatcher.retry_later (the real call still runs)."""
    calls: list[tuple[str, int]] = []
    real = env.rt.dispatcher.retry_later

    def spy(queue_url: str, receipt_handle: str, seconds: int) -> None:
        calls.append((receipt_handle, seconds))
        real(queue_url, receipt_handle, seconds)

    monkeypatch.setattr(env.rt.dispatcher, "retry_later", spy)
    return calls


class Blocker:
    """A handler body that blocks until the test lets it go (no sleeps to race)."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.done = threading.Event()
        self.after: list[str] = []

    def __call__(self, data: Any, ctx: Any) -> Any:
        self.go.wait(30)
        try:
            ctx.progress(99, "after the deadline")
            self.after.append("progress accepted")
        except Exception as exc:  # noqa: BLE001
            self.after.append(type(exc).__name__)
        self.after.append(f"canceled={ctx.canceled}")
        self.done.set()
        return {"late": True}


def submit(http: Any, service: str, data: Any = None) -> str:
    resp = http.post("/v1/jobs", {"service": service, "input": data or {}})
    assert resp.status_code == 202, resp.body
    return body(resp)["jobId"]


def job(env: Any, job_id: str) -> Any:
    found = env.rt.store.get(TENANT, job_id, 0)
    assert found is not None
    return found


def reveal_all(env: Any, messages: list[dict[str, Any]]) -> None:
    for m in messages:
        try:
            env.rt.clients.sqs.change_message_visibility(
                QueueUrl=env.queues["jobs"], ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        except Exception:  # noqa: BLE001  (deleted already)
            pass


# -- declarations ------------------------------------------------------------------------------

def test_every_discovered_module_declares_an_honourable_service() -> None:
    from chalicelib import services
    from chalicelib.services.base import MAX_LAMBDA_TIMEOUT_SECONDS, declaration_problems

    names = services.module_names()
    assert {"chalicelib.services.echo", "chalicelib.services.dataload"} <= set(names)
    assert not any(n.rsplit(".", 1)[1] in ("base", "_deadline") for n in names)
    declared = services.all_services()
    origins = {services._ORIGINS[s.name] for s in declared}
    assert set(names) <= origins, "every module in chalicelib/services/ registers a service"
    for s in declared:
        assert declaration_problems(s) == [], s.name
        if s.runs_on == "lambda":
            assert s.timeout_seconds <= MAX_LAMBDA_TIMEOUT_SECONDS, s.name


def test_a_timeout_longer_than_the_job_function_allows_is_refused_at_declaration(
        services_dir: Path, http: Any) -> None:
    from chalicelib import services
    from chalicelib.services import Service

    with pytest.raises(ValueError, match="exceeds 830 s"):
        Service(name="long", description="x", handler=lambda d, c: d, timeout_seconds=1200)
    Service(name="long", description="x", handler=lambda d, c: d, timeout_seconds=830)
    Service(name="long", description="x", runs_on="worker", timeout_seconds=86_400)
    (services_dir / "toolong.py").write_text(
        "from chalicelib.services import Service, register\n"
        "register(Service(name='toolong', description='x', handler=lambda d, c: d,"
        " timeout_seconds=1200))\n")
    with pytest.raises(ValueError, match="toolong"):
        services.discover()  # the import fails: in the test suite, and where it is deployed
    (services_dir / "toolong.py").unlink()
    names = [s["name"] for s in body(http.get("/v1/services"))["services"]]
    assert "toolong" not in names


def test_declaration_mistakes_are_refused() -> None:
    from chalicelib import services
    from chalicelib.services import Service

    with pytest.raises(ValueError, match="needs a handler"):
        Service(name="x", description="x")
    with pytest.raises(ValueError, match="no handler"):
        Service(name="x", description="x", runs_on="worker", handler=lambda d, c: d)
    with pytest.raises(ValueError, match="declared twice"):
        services.register(Service(name="echo", description="x", handler=lambda d, c: d))
    assert services.get("echo").description == "Returns the input object unchanged."


def test_the_function_timeout_is_one_figure_in_code_and_config() -> None:
    from chalicelib.records import lambda_time_left
    from chalicelib.services import (
        END_MARGIN_SECONDS,
        JOB_FUNCTION_TIMEOUT_SECONDS,
        MAX_LAMBDA_TIMEOUT_SECONDS,
        START_SLACK_SECONDS,
    )
    from localrunner.pollers import LambdaContext, function_timeout

    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for stage, cfg in config["stages"].items():
        assert cfg["lambda_functions"]["run_jobs"]["lambda_timeout"] == \
            JOB_FUNCTION_TIMEOUT_SECONDS, stage
        assert function_timeout("run_jobs", stage) == JOB_FUNCTION_TIMEOUT_SECONDS
    assert LambdaContext("run_jobs").timeout == JOB_FUNCTION_TIMEOUT_SECONDS
    assert LambdaContext("api_handler").timeout == 30
    assert MAX_LAMBDA_TIMEOUT_SECONDS == \
        JOB_FUNCTION_TIMEOUT_SECONDS - END_MARGIN_SECONDS - START_SLACK_SECONDS
    assert lambda_time_left(None) == JOB_FUNCTION_TIMEOUT_SECONDS - END_MARGIN_SECONDS


def test_jobs_are_taken_one_per_invocation() -> None:
    import app as app_module

    sources = {s.name: s for s in app_module.app.event_sources}
    assert sources["run_jobs"].batch_size == 1


# -- discovery and the API ---------------------------------------------------------------------

def test_a_module_dropped_into_the_services_package_is_a_service(
        services_dir: Path, http: Any, env: Any) -> None:
    (services_dir / "greet.py").write_text(
        "from pydantic import BaseModel\n"
        "from chalicelib.services import Service, register\n"
        "class In(BaseModel):\n    name: str\n"
        "def run(data, ctx):\n    ctx.set_variable('GREETED', 1)\n"
        "    return {'hello': data.name}\n"
        "register(Service(name='greet', description='Greets.', handler=run, input_model=In,"
        " status_variables=('GREETED',), timeout_seconds=10))\n")
    listed = {s["name"]: s for s in body(http.get("/v1/services"))["services"]}
    assert listed["greet"]["runsOn"] == "lambda" and listed["greet"]["timeoutSeconds"] == 10
    assert listed["echo"]["runsOn"] == "lambda"
    assert http.post("/v1/jobs", {"service": "greet", "input": {}}).status_code == 422
    job_id = submit(http, "greet", {"name": "ann"})
    env.run_queue()
    done = body(http.get(f"/v1/jobs/{job_id}"))
    assert done["status"] == "succeeded" and done["variables"] == {"GREETED": "1"}


HEAVY_SERVICE = """\
from chalicelib.services import Service, register


def run(data, ctx):
    import jobgate_test_heavy_marker  # the handler's own dependency

    return {"marker": jobgate_test_heavy_marker.VALUE}


register(Service(name="heavy", description="imports its dependency in the handler",
                 handler=run, content_variable="DOC", timeout_seconds=30))
"""

PROBE = """\
import json, sys
sys.path[:0] = [{root!r}, {libs!r}]
from tests import conftest  # fake AWS credentials, as in the suite
from moto import mock_aws
from chalicelib import services
services.__path__.append({extra!r})
with mock_aws():
    from chalicelib.connections import create_clients
    from localrunner.provision import local_runtime
    local_runtime(create_clients("us-east-1"), "jobgate-probe", "us-east-1",
                  [("acme", conftest.KEY_A, conftest.SECRET_A)], {{}})
    import app
    from chalice.test import Client
    codes = {{}}
    with Client(app.app) as client:
        for s in services.all_services():
            resp = client.http.post(f"/v1/services/{{s.name}}/jobs", body=b"[{{}}]",
                                    headers={{"Authorization": "Bearer " + conftest.KEY_A,
                                             "Content-Type": "application/json"}})
            codes[s.name] = resp.status_code
    before = "jobgate_test_heavy_marker" in sys.modules
    env = conftest.Env(app.runtime.get(), {{"jobs": app.runtime.get().settings.jobs_queue_url}})
    env.run_queue()
    print(json.dumps({{"codes": codes, "before": before,
                      "after": "jobgate_test_heavy_marker" in sys.modules}}))
"""


@pytest.mark.moto  # a fresh interpreter on moto (PROBE)
def test_submits_never_import_what_only_a_handler_needs(tmp_path: Path) -> None:
    """`import app` and one submit of every service, in a fresh interpreter: the heavy
    service's dependency is imported only once its job runs."""
    extra, libs = tmp_path / "services", tmp_path / "libs"
    extra.mkdir()
    libs.mkdir()
    (extra / "heavy.py").write_text(HEAVY_SERVICE)
    (libs / "jobgate_test_heavy_marker.py").write_text("VALUE = 42\n")
    script = PROBE.format(root=str(ROOT), libs=str(libs), extra=str(extra))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["codes"]["heavy"] == 202 and all(c < 500 for c in out["codes"].values()), out
    assert {"echo", "dataload", "sleep", "snapshot"} <= set(out["codes"])
    assert out["before"] is False, "a submit imported the handler's dependency"
    assert out["after"] is True, "the probe did not run the heavy job (the test proves nothing)"


# -- honest time ---------------------------------------------------------------------------------

@pytest.mark.slow  # waits on the wall clock (a retry interval, a deadline)
def test_a_handler_past_its_timeout_ends_timed_out_without_holding_up_its_batch(
        env: Any, http: Any, add_service: Callable[..., Any], retries: Any) -> None:
    blocker = Blocker()
    add_service("overrun", blocker, timeout_seconds=1, max_attempts=2)
    slow = submit(http, "overrun")
    quick = submit(http, "echo", {"n": 1})
    try:
        msgs = env.messages()
        assert len(msgs) == 2
        started = time.monotonic()
        env.deliver(msgs)  # one batch: the overrun record and the echo
        assert time.monotonic() - started < 20  # the batch did not wait for the handler
        assert job(env, quick).status == "succeeded"
        first = job(env, slow)
        assert (first.status, first.attempts, first.error_code) == ("queued", 1, "timed_out")
        blocker.go.set()  # the abandoned handler goes on: its late calls are refused
        assert blocker.done.wait(10)
        assert blocker.after == ["TimedOut", "canceled=True"]
        assert job(env, slow).progress_percent in (None, 0, 0.0)

        blocker.go.clear()
        blocker.done.clear()
        blocker.after.clear()
        reveal_all(env, msgs)
        env.deliver(env.messages())  # the last attempt
        last = job(env, slow)
        assert (last.status, last.attempts, last.error_code) == ("failed", 2, "timed_out")
        resource = body(http.get(f"/v1/jobs/{slow}"))
        assert resource["error"]["code"] == "timed_out"
        log = http.get(f"/v1/jobs/{slow}/log").body.decode()
        assert "timeout of 1s" in log
    finally:
        blocker.go.set()


@pytest.mark.slow  # waits on the wall clock (a retry interval, a deadline)
def test_a_cooperative_handler_stops_at_its_deadline_and_the_job_ends_timed_out(
        env: Any, http: Any, add_service: Callable[..., Any]) -> None:
    from chalicelib.services import Canceled

    def polite(data: Any, ctx: Any) -> Any:
        while not ctx.canceled:  # true from the deadline on
            threading.Event().wait(0.05)
        raise Canceled()

    add_service("polite", polite, timeout_seconds=1, max_attempts=1)
    job_id = submit(http, "polite")
    env.run_queue()
    j = job(env, job_id)
    assert (j.status, j.error_code) == ("failed", "timed_out")


def test_a_record_with_too_little_time_left_goes_back_without_an_attempt(
        env: Any, http: Any, add_service: Callable[..., Any], retries: Any) -> None:
    from chalicelib.services import END_MARGIN_SECONDS

    ran: list[str] = []
    add_service("half", lambda d, c: ran.append(c.job_id), timeout_seconds=100)
    job_id = submit(http, "half")
    msgs = env.messages()

    class Short:  # Lambda's context, 99 s usable: less than the service's 100 s
        def get_remaining_time_in_millis(self) -> int:
            return (END_MARGIN_SECONDS + 99) * 1000

    import app as app_module
    from chalicelib.batch import BatchFailed

    with pytest.raises(BatchFailed):
        app_module.app.handler_map["run_jobs"](env.event(msgs), Short())
    assert ran == []
    j = job(env, job_id)
    assert (j.status, j.attempts) == ("queued", 0)
    assert retries == [(msgs[0]["ReceiptHandle"], 0)]  # visible again at once
    env.run_queue()
    assert job(env, job_id).status == "succeeded" and ran == [job_id]


def test_the_longest_declaration_starts_in_a_fresh_invocation(
        env: Any, http: Any, add_service: Callable[..., Any]) -> None:
    """A fresh invocation is a little under the function's timeout when its record starts:
    the longest timeout a service may declare must still start there (it did not: snapshot,
    declared at the old maximum, bounced until it was dead-lettered with no attempt)."""
    from chalicelib.services import END_MARGIN_SECONDS, JOB_FUNCTION_TIMEOUT_SECONDS
    from chalicelib.services.base import MAX_LAMBDA_TIMEOUT_SECONDS

    ran: list[str] = []
    add_service("longest", lambda d, c: ran.append(c.job_id) or {},
                timeout_seconds=MAX_LAMBDA_TIMEOUT_SECONDS)
    job_id = submit(http, "longest")

    class Fresh:  # the invocation has already spent a few seconds starting up
        def get_remaining_time_in_millis(self) -> int:
            return (JOB_FUNCTION_TIMEOUT_SECONDS - 5) * 1000

    assert (JOB_FUNCTION_TIMEOUT_SECONDS - 5) - END_MARGIN_SECONDS >= MAX_LAMBDA_TIMEOUT_SECONDS
    import app as app_module

    app_module.app.handler_map["run_jobs"](env.event(env.messages()), Fresh())
    assert ran == [job_id] and job(env, job_id).status == "succeeded"


def test_the_local_runners_pollers_apply_their_functions_timeout(env: Any) -> None:
    import threading as th

    from localrunner import pollers

    made = [pollers.Poller(env.rt.clients.sqs, env.queues["jobs"], None, name, 1, "us-east-1",
                           th.Event()) for name in ("run_jobs-0", "run_jobs-3", "run_jobs")]
    assert {p.function for p in made} == {"run_jobs"}
    assert pollers.function_timeout(made[0].function) == 900


def test_the_local_runner_leaves_a_batch_that_overran_its_function(
        env: Any, http: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading as th

    import app as app_module
    from localrunner import pollers

    monkeypatch.setattr(pollers, "function_timeout", lambda name, stage="dev": 0.0)
    job_id = submit(http, "echo", {"a": 1})
    poller = pollers.Poller(env.rt.clients.sqs, env.queues["jobs"],
                            app_module.app.handler_map["run_jobs"], "run_jobs", 1, "us-east-1",
                            th.Event(), wait_seconds=0)
    assert poller.poll_once() == 1
    assert job(env, job_id).status == "queued"  # no time at all: put back, never started
    attrs = env.rt.clients.sqs.get_queue_attributes(
        QueueUrl=env.queues["jobs"], AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "1"


# -- the handler's toolkit -----------------------------------------------------------------------

def test_a_validation_error_inside_the_handler_is_retried_not_invalid_input(
        env: Any, http: Any, add_service: Callable[..., Any], retries: Any) -> None:
    from pydantic import BaseModel

    class Row(BaseModel):
        n: int

    add_service("parses", lambda d, c: Row.model_validate({"n": "x"}), max_attempts=2)
    job_id = submit(http, "parses")
    env.deliver(env.messages())
    first = job(env, job_id)
    assert (first.status, first.error_code) == ("queued", "handler_error")
    assert len(retries) == 1


def test_stored_input_that_fails_the_model_is_invalid_input(
        env: Any, http: Any, add_service: Callable[..., Any]) -> None:
    from pydantic import BaseModel

    class In(BaseModel):
        n: int

    add_service("strict", lambda d, c: {}, input_model=In)
    job_id = submit(http, "strict", {"n": 1})
    env.rt.store.update_fields(TENANT, job_id, {"input": {"n": "not a number"}})
    env.run_queue()
    j = job(env, job_id)
    assert (j.status, j.error_code, j.attempts) == ("failed", "invalid_input", 1)


def test_retry_asks_for_a_later_attempt_and_attempts_still_bound_it(
        env: Any, http: Any, add_service: Callable[..., Any], retries: Any) -> None:
    from chalicelib.services import Retry

    def busy(data: Any, ctx: Any) -> Any:
        raise Retry(45, "the upstream API is busy")

    add_service("busy", busy, max_attempts=2)
    job_id = submit(http, "busy")
    msgs = env.messages()
    env.deliver(msgs)
    j = job(env, job_id)
    assert (j.status, j.attempts, j.error_code) == ("queued", 1, "retry_requested")
    assert retries == [(msgs[0]["ReceiptHandle"], 45)]
    reveal_all(env, msgs)
    env.deliver(env.messages())
    j = job(env, job_id)
    assert (j.status, j.attempts, j.error_code) == ("failed", 2, "attempts_exhausted")
    assert "busy" in (j.error_message or "")


# -- the testing helper --------------------------------------------------------------------------

def test_run_service_returns_what_the_job_would_show() -> None:
    from chalicelib.testing import run_service

    run = run_service("sleep", {"seconds": 0, "steps": 2, "result": [1]})
    assert run.status == "succeeded" and run.result == {"slept": 0.0, "result": [1]}
    assert run.progress == [(50.0, "step 1/2"), (100.0, "step 2/2")]
    assert run.variables == {"STEP": "2"}
    assert run.log[0].startswith("[low] sleeping")
    assert run_service("dataload", content=b"a\n1\n2\n").result["rows"] == 2
    snap = run_service("snapshot", {"rows": 2})
    assert snap.content_type == "text/csv" and snap.body.count(b"\n") == 3


@pytest.mark.slow  # waits on the wall clock (a retry interval, a deadline)
def test_run_service_honours_timeouts_retry_and_cancel() -> None:
    from chalicelib.services import Retry, Service
    from chalicelib.testing import run_service

    release = threading.Event()
    try:
        stuck = Service(name="stuck", description="x", timeout_seconds=1,
                        handler=lambda d, c: release.wait(30))
        assert run_service(stuck).status == "timed_out"  # declared 1 s, would run 30 s
    finally:
        release.set()

    def later(d: Any, c: Any) -> Any:
        raise Retry(30)

    run = run_service(Service(name="later", description="x", handler=later))
    assert (run.status, run.retry_after) == ("retry", 30.0)
    assert run_service("sleep", {"seconds": 0}, canceled=True).status == "canceled"


# -- the README's example, end to end --------------------------------------------------------------

def test_the_wordcount_example_runs_end_to_end(services_dir: Path, http: Any, env: Any) -> None:
    from chalicelib import services

    assert services.get("wordcount") is None  # not registered by default
    shutil.copy(ROOT / "examples" / "wordcount.py", services_dir / "wordcount.py")
    services.discover()  # what restarting `make run` (or a deploy) does
    listed = {s["name"]: s for s in body(http.get("/v1/services"))["services"]}
    assert listed["wordcount"]["contentVariable"] == "TEXT"
    text = b"to be or not to be\nthat is the question\n"
    resp = http.request("POST", "/v1/services/wordcount/jobs?TOP=2", body=text,
                        headers={"Content-Type": "text/plain"}, key=KEY_A)
    assert resp.status_code == 202, resp.body
    job_id = body(resp)["jobId"]
    bad = http.request("POST", "/v1/services/wordcount/jobs?TOP=0", body=text,
                       headers={"Content-Type": "text/plain"})
    assert bad.status_code == 422
    env.run_queue()
    done = body(http.get(f"/v1/jobs/{job_id}"))
    assert done["status"] == "succeeded", done
    assert done["variables"] == {"WORDS": "10"}
    assert done["progress"]["percent"] == 100.0
    j = job(env, job_id)
    result = json.loads(env.rt.blobs.get(j.result_key))
    assert result == {"lines": 2, "words": 10, "distinct": 8,
                      "top": [{"word": "to", "count": 2}, {"word": "be", "count": 2}]}
