"""One real local runner for every compatibility replay (a pytest plugin, so the Hop page
test and the other replays share it): the runner on a moto server of our own, so that
`jobgate-admin` sets the tenants up exactly as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from localrunner.live import LiveRunner, free_port, live_runner

PROJECT = Path(__file__).resolve().parent.parent
TABLE = "jobgate-local-jobs"


@dataclass
class Compat:
    runner: LiveRunner
    endpoint: str
    keys: dict[str, str] = field(default_factory=dict)  # tenant -> api key
    secrets: dict[str, str] = field(default_factory=dict)  # tenant -> webhook secret

    @property
    def url(self) -> str:
        return self.runner.url

    def admin(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        return subprocess.run([str(PROJECT / ".venv/bin/python"), "-m", "chalicelib.admin",
                               "--table", TABLE, "--actor", "test", "--json", *args],
                              cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120,
                              input=stdin)

    def create(self, tenant: str, *policy: str) -> None:
        out = self.admin("create-tenant", tenant)
        assert out.returncode == 0, out.stderr
        created = json.loads(out.stdout)
        self.keys[tenant], self.secrets[tenant] = created["apiKey"], created["webhookSecret"]
        if policy:
            out = self.admin("set-policy", tenant, *policy)
            assert out.returncode == 0, out.stderr


@pytest.fixture(scope="session")
def compat() -> Iterator[Compat]:
    """Tenants: `cluster` (Hop's `--user cluster:cluster`, an imported weak key), `su`
    (Guidewire's tutorial user, password `gw`), `shopco` (Shoptet webhooks), `bawco` (BAW:
    fixed retries, outputs body) and `starco` (a Starfish jobID mapping). Every policy is
    set before the first request, so no tenant cache holds an older one."""
    # A moto server in a process of its own: an in-process one shares moto's global backends
    # with the `mock_aws` of the other test modules, which wipes them (tenants, tables, queues)
    # whenever one of those tests ends, and every later compatibility test failed.
    import socket
    import sys
    import time

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, "the moto server exited"
            assert time.monotonic() < deadline, "the moto server did not start"
            time.sleep(0.1)
    try:
        with live_runner(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                         AWS_SECRET_ACCESS_KEY="testing") as runner:
            c = Compat(runner, endpoint)
            for tenant, password in (("cluster", "cluster"), ("su", "gw")):
                c.create(tenant)
                out = c.admin("import-key", tenant, "--key-file", "-", "--allow-weak-key",
                              stdin=password + "\n")
                assert out.returncode == 0, out.stderr
            c.create("shopco", "--callback-format", "shoptet")
            c.create("bawco", "--callback-body", "outputs", "--retry-schedule", "fixed")
            c.create("starco", "--starfish-job", "Nightly Load=echo")
            yield c
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
