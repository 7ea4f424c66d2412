"""What a running job shows while it runs and what its log keeps: `sleep`'s STEP variable
and its progress message agree in every state the job item passes through, and the log
keeps every attempt's lines, each attempt headed."""

from __future__ import annotations

import re
import types
from typing import Any

import pytest

from tests.conftest import body

pytestmark = pytest.mark.fast  # on the in-memory adapters (tests/conftest.py)

TENANT = "acme"


def submit(http: Any, service: str, data: Any = None, **extra: Any) -> str:
    payload = {"service": service, **extra}
    if data is not None:
        payload["input"] = data
    resp = http.post("/v1/jobs", payload)
    assert resp.status_code == 202, resp.body
    return body(resp)["jobId"]


@pytest.fixture
def fake_time(env: Any, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A monotonic clock that only `sleep` moves: the worker's progress throttle and the
    sleep service see the same time, so which write is throttled is decided, not raced."""
    import time

    from chalicelib.services import sleep

    now = [1000.0]

    def advance(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(env.rt.worker, "ticks", lambda: now[0])
    monkeypatch.setattr(sleep, "time", types.SimpleNamespace(
        monotonic=lambda: now[0], time=time.time, sleep=advance))
    return now


@pytest.mark.parametrize("seconds,steps", [(10, 10), (4, 10), (3, 2), (30, 7)])
def test_sleep_step_agrees_with_its_progress_message_in_every_stored_state(
        env, http, fake_time, seconds, steps):
    states: list[dict[str, Any]] = []
    real = env.rt.store.heartbeat
    state: dict[str, Any] = {}

    def spy(tenant: str, job_id: str, token: str, values: dict[str, Any]) -> Any:
        state.update(values)
        states.append(dict(state))
        return real(tenant, job_id, token, values)

    env.rt.store.heartbeat = spy
    job_id = submit(http, "sleep", {"seconds": seconds, "steps": steps})
    assert env.run_queue() == 1
    assert len(states) >= 2, states  # progress was written while it ran
    for s in states:
        step = (s.get("statusVars") or {}).get("STEP")
        message = s.get("progressMessage")
        shown = re.fullmatch(rf"step (\d+)/{steps}", message or "")
        assert (step in (None, "0") and shown is None) or (
            shown is not None and shown[1] == step), s
    done = body(http.get(f"/v1/jobs/{job_id}"))
    assert done["variables"] == {"STEP": str(steps)}
    assert done["progress"]["message"] == f"step {steps}/{steps}"


# -- the log keeps every attempt --------------------------------------------------------------

def _run_all_attempts(env: Any, job_id: str) -> None:
    """Run the job's message until the job ends; a retry comes back at once instead of
    after its backoff."""
    sqs = env.rt.clients.sqs
    env.rt.dispatcher.retry_later = lambda queue_url, receipt, seconds: \
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt,
                                      VisibilityTimeout=0)
    for _ in range(10):
        env.run_queue()
        if env.rt.store.get(TENANT, job_id, 0).terminal:
            return
    raise AssertionError("the job never ended")


def _attempt_sections(text: str) -> list[tuple[str, list[str]]]:
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("--- attempt "):
            sections.append((line, []))
        else:
            assert sections, f"a line before the first attempt header: {line!r}"
            sections[-1][1].append(line)
    return sections


@pytest.mark.parametrize("log_level,steps", [(1, 2), (3, 200)])  # inline, and kept in S3
def test_the_log_keeps_every_attempts_lines_each_headed(env, http, log_level, steps):
    env.settings(job_retry_base_seconds=1)
    job_id = submit(http, "sleep", {"seconds": 0, "steps": steps, "fail": True},
                    logLevel=log_level)
    _run_all_attempts(env, job_id)
    job = env.rt.store.get(TENANT, job_id, 0)
    assert job.status == "failed" and job.attempts == 3
    if steps > 100:
        assert job.log_key and not job.log_inline  # over the inline limit: in S3
        out = env.rt.clients.s3.list_objects_v2(Bucket=env.rt.settings.bucket_name,
                                                Prefix=f"logs/{TENANT}/{job_id}/")
        assert [o["Key"] for o in out["Contents"]] == [job.log_key]  # earlier copies dropped
    else:
        assert job.log_inline and not job.log_key
    resp = http.get(f"/v1/jobs/{job_id}/log")
    assert resp.status_code == 200
    text = resp.body.decode() if isinstance(resp.body, bytes) else resp.body
    assert len(text.encode()) == job.log_size
    sections = _attempt_sections(text)
    assert [h for h, _ in sections] == [f"--- attempt {n} of 3 ---" for n in (1, 2, 3)]
    for n, (_, lines) in enumerate(sections, start=1):
        assert any(f"attempt {n} of 3 started" in ln for ln in lines), lines[:3]
        assert any("failed: SleepFailed" in ln for ln in lines), lines[-3:]
        if log_level == 3:
            assert sum(ln.endswith(" done") and " step " in ln for ln in lines) == steps


def test_a_success_after_a_failed_attempt_keeps_the_failed_attempts_lines(env, http):
    from chalicelib import services
    from chalicelib.services import Service

    calls: list[int] = []

    def flaky(data: Any, ctx: Any) -> Any:
        calls.append(1)
        ctx.log(f"try number {len(calls)}")
        if len(calls) == 1:
            raise RuntimeError("first try fails")
        return {"ok": True}

    services.get("echo")
    services.register(Service(name="flaky-log", handler=flaky, description="test",
                              timeout_seconds=30))
    try:
        env.settings(job_retry_base_seconds=1)
        job_id = submit(http, "flaky-log", {})
        _run_all_attempts(env, job_id)
    finally:
        services._REGISTRY.pop("flaky-log", None)
    text = http.get(f"/v1/jobs/{job_id}/log").body
    text = text.decode() if isinstance(text, bytes) else text
    sections = _attempt_sections(text)
    assert [h for h, _ in sections] == ["--- attempt 1 of 3 ---", "--- attempt 2 of 3 ---"]
    assert any("try number 1" in ln for ln in sections[0][1])
    assert any("failed: RuntimeError: first try fails" in ln for ln in sections[0][1])
    assert any("try number 2" in ln for ln in sections[1][1])
    assert any(ln.endswith("succeeded") for ln in sections[1][1])
