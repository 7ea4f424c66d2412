"""The Hop async web service page's client lines, replayed with curl against the local
runner: only the URLs and the id extraction are adapted (Hop answers {"id": ...}, we
answer a job resource whose id is "jobId")."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from tests.live import live_runner

DOCUMENT = [{"name": "ann", "age": 31}, {"name": "bob", "age": None}, {"name": "cy", "age": 45}]


@pytest.fixture(scope="module")
def hop():
    if shutil.which("curl") is None:
        raise AssertionError("curl is needed to replay the Hop docs")
    secret = "whsec_" + "Q" * 32
    with live_runner(JOBGATE_TENANTS=f"cluster:cluster:{secret}") as runner:
        yield runner


def test_the_hop_curl_sequence_works(hop, tmp_path):
    (tmp_path / "document.json").write_text(json.dumps(DOCUMENT))
    run = f"""
set -euo pipefail
curl -v \\
  --user cluster:cluster \\
  --request POST \\
  -o async-run.json \\
  -H "Content-Type: application/json" \\
  --data-binary '@document.json' \\
  '{hop.url}/v1/services/dataload/jobs?MAX=50000000'
ID=$(cat async-run.json | sed 's/^.*"jobId":"//g' | sed 's/".*$//g') && \\
curl --user cluster:cluster \\
     --request GET \\
     -o - \\
     '{hop.url}/v1/jobs/'$ID
"""
    first = subprocess.run(["bash", "-c", run], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
    assert first.returncode == 0, first.stderr
    assert "< HTTP/1.1 202" in first.stderr
    status = json.loads(first.stdout)
    assert status["service"] == "dataload" and status["status"] in ("queued", "running",
                                                                    "succeeded")
    job_id = status["jobId"]
    status_cmd = f"curl -s --user cluster:cluster '{hop.url}/v1/jobs/{job_id}'"
    deadline = time.time() + 30
    while status["status"] != "succeeded" and time.time() < deadline:
        time.sleep(0.3)
        status = json.loads(subprocess.run(["bash", "-c", status_cmd], capture_output=True,
                                           text=True, timeout=30).stdout)
    assert status["status"] == "succeeded", status
    # Hop reports the service's declared status variables with the status
    assert status["variables"] == {"ROWS_READ": "3", "ROWS_WRITTEN": "3"}
    result_cmd = f"curl -sL --user cluster:cluster '{hop.url}/v1/jobs/{job_id}/result'"
    result = subprocess.run(["bash", "-c", result_cmd], capture_output=True, text=True, timeout=30)
    assert json.loads(result.stdout)["fields"]["age"] == {"count": 2, "nulls": 1, "min": 31,
                                                          "max": 45}


def test_wrong_basic_password_is_401(hop):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--user",
                          "cluster:wrong", f"{hop.url}/v1/jobs"], capture_output=True, text=True)
    assert out.stdout == "401"
