"""Every worker log line is JSON with tenant, jobId, service and attempt; metrics are EMF."""

from __future__ import annotations

import json

from tests.conftest import body


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_worker_lines_carry_the_job_keys_and_metrics_are_emf(env, http, capsys):
    job_id = body(http.post("/v1/jobs", {"service": "echo", "input": {"a": 1}}))["jobId"]
    capsys.readouterr()
    env.run_queue()
    lines = _lines(capsys.readouterr().out)
    logs = [x for x in lines if "message" in x]
    assert any(x["message"] == "job succeeded" for x in logs)
    for line in logs:
        assert line["tenant"] == "acme" and line["jobId"] == job_id
        assert line["service"] == "echo" and line["attempt"] == 1 and line["messageId"]
    metrics = {m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"]: m for m in lines if "_aws" in m}
    assert {"QueueWait", "JobsSucceeded", "JobDuration"} <= set(metrics)
    succeeded = metrics["JobsSucceeded"]
    assert succeeded["JobsSucceeded"] == 1 and succeeded["JobService"] == "echo"
    assert succeeded["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Jobgate"
    sets = succeeded["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert sets == [["service"], ["JobService", "service"]]  # the alarms watch ["service"]
    assert all(d in succeeded for dims in sets for d in dims)


def test_secrets_never_reach_the_log(env, http, capsys):
    from tests.conftest import KEY_A, SECRET_A

    http.get("/v1/jobs/doesnotexist")
    http.post("/v1/jobs", {"service": "echo"}, key="wrong-key")
    env.run_queue()
    out = capsys.readouterr()
    assert KEY_A not in out.out + out.err and SECRET_A not in out.out + out.err
