"""Against the real local runner, on a moto server of our own (AWS_ENDPOINT_URL): the
runner creates its resources there, and `jobgate-admin` run against the same endpoint
creates a tenant whose key works at once and stops working within seconds of its
revocation."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from localrunner.live import free_port, live_runner

PROJECT = Path(__file__).resolve().parent.parent
TABLE = "jobgate-local-jobs"


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def admin(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run([str(PROJECT / ".venv/bin/python"), "-m", "chalicelib.admin",
                           "--table", TABLE, "--actor", "test", "--json", *args],
                          cwd=PROJECT, env=env, capture_output=True, text=True, timeout=60)


def test_runner_on_an_external_endpoint_and_live_revocation(moto_endpoint):
    with live_runner(AWS_ENDPOINT_URL=moto_endpoint, AWS_ACCESS_KEY_ID="testing",
                     AWS_SECRET_ACCESS_KEY="testing") as runner:
        import boto3

        db = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        assert TABLE in db.list_tables()["TableNames"]  # the runner provisioned it there
        created = admin(moto_endpoint, "create-tenant", "liveco")
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)["apiKey"]
        auth = {"Authorization": f"Bearer {key}"}
        resp = requests.post(f"{runner.url}/v1/jobs", headers=auth, timeout=10,
                             json={"service": "echo", "input": {"x": 1}})
        assert resp.status_code == 202, resp.text
        job_url = resp.headers["Location"]
        deadline = time.time() + 20
        while requests.get(job_url, headers=auth, timeout=5).json()["status"] != "succeeded":
            assert time.time() < deadline, runner.log()
            time.sleep(0.2)
        keys = json.loads(admin(moto_endpoint, "list-keys", "liveco").stdout)["keys"]
        revoked = admin(moto_endpoint, "revoke-key", "liveco", keys[0]["key_id"])
        assert revoked.returncode == 0, revoked.stderr
        # The runner caches a key for at most 5 s (tests/test_rules.py checks that on a
        # clock it moves); here, on the wall clock, only "it stops working" is asserted.
        deadline = time.time() + 60
        while requests.get(f"{runner.url}/v1/jobs", headers=auth, timeout=5).status_code != 401:
            assert time.time() < deadline, "a revoked key still works a minute later"
            time.sleep(0.5)
        entries = json.loads(admin(moto_endpoint, "audit-log", "liveco").stdout)["entries"]
        assert [e["action"] for e in entries] == ["tenant.create", "key.issue", "key.revoke"]
