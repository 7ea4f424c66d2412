"""The Apache Hop async web service page, replayed: its own `curl` and `sed` lines run in a
shell against the local runner, only `http://localhost:8282` replaced, with the page's
`--user cluster:cluster` kept (an imported key, `jobgate-admin import-key`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import requests

from tests.seeds import seed

pytest_plugins = ("tests.compat_live",)

DOCUMENT = [{"name": "ann", "age": 31}, {"name": "bob", "age": None}, {"name": "cy", "age": 45}]
HOP_URL = "http://localhost:8282"
WORDS = {"Waiting", "Running", "Finished", "Finished (with errors)", "Stopped"}


def page_commands() -> list[str]:
    """The page's two shell blocks, verbatim."""
    blocks = re.findall(r"```highlight\n(.*?)```", seed("hop/asyncRun"), re.S)
    assert len(blocks) == 2 and "asyncRun/" in blocks[0] and "asyncStatus/" in blocks[1]
    return blocks


def shell(script: str, cwd: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_pages_curl_and_sed_lines_work(compat, tmp_path):
    if shutil.which("curl") is None:
        raise AssertionError("curl is needed to replay the Hop page")
    (tmp_path / "document.json").write_text(json.dumps(DOCUMENT))
    run, status = (b.replace(HOP_URL, compat.url) for b in page_commands())
    first = shell(run, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "< HTTP/1.1 200" in first.stderr
    answer = json.loads((tmp_path / "async-run.json").read_text())
    assert list(answer) == ["name", "id"] and answer["name"] == "dataload"
    deadline = time.time() + 60
    while True:
        out = shell(status, tmp_path)  # the page's sed extraction feeds this curl
        assert out.returncode == 0, out.stderr
        body = json.loads(out.stdout)
        assert body["id"] == answer["id"] and body["service"] == "dataload"
        assert body["statusDescription"] in WORDS
        if body["statusDescription"] == "Finished" or time.time() > deadline:
            break
        time.sleep(0.3)
    assert body["statusDescription"] == "Finished", compat.runner.log()
    assert set(body) == {"service", "id", "startDate", "endDate", "statusDescription",
                         "statusVariables"}
    # Hop reports the service's declared status variables
    assert body["statusVariables"] == {"ROWS_READ": "3", "ROWS_WRITTEN": "3"}
    # the same job, through the main API (one store, one lifecycle)
    job = requests.get(f"{compat.url}/v1/jobs/{answer['id']}", auth=("cluster", "cluster"),
                       timeout=10).json()
    assert job["status"] == "succeeded" and job["variables"] == body["statusVariables"]


def test_status_variables_are_null_until_set_and_xml_on_request(compat):
    auth = ("cluster", "cluster")
    run = requests.get(f"{compat.url}/hop/asyncRun?service=sleep&runConfig=local", auth=auth,
                       timeout=10)
    assert run.status_code == 200, run.text
    job_id = run.json()["id"]
    body = requests.get(f"{compat.url}/hop/asyncStatus/?service=sleep&id={job_id}", auth=auth,
                        timeout=10).json()
    assert body["statusDescription"] in {"Waiting", "Running", "Finished"}
    assert set(body["statusVariables"]) == {"STEP"}
    xml = requests.get(f"{compat.url}/hop/asyncStatus?service=sleep&id={job_id}&xml=Y",
                       auth=auth, timeout=10)
    assert xml.headers["Content-Type"] == "application/xml"
    assert f"<id>{job_id}</id>" in xml.text and "<statusDescription>" in xml.text
    wrong = requests.get(f"{compat.url}/hop/asyncStatus?service=echo&id={job_id}", auth=auth,
                         timeout=10)
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "not_found"


def test_wrong_basic_password_is_401(compat):
    for path in ("/hop/asyncRun/?service=echo", "/hop/asyncStatus/?service=echo&id=x"):
        resp = requests.get(compat.url + path, auth=("cluster", "wrong"), timeout=10)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"


def test_import_key_refuses_a_weak_key_without_the_flag(compat):
    out = compat.admin("import-key", "cluster", "--key-file", "-", stdin="short\n")
    assert out.returncode == 1 and "at least 16" in out.stderr
    assert requests.get(f"{compat.url}/v1/jobs", auth=("cluster", "short"),
                        timeout=10).status_code == 401
