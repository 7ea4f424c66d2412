"""Shared fixtures: a moto AWS with Jobgate's resources, a runtime wired to it, two
tenants, and Chalice's test client. Nothing here can reach real AWS."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_DEFAULT_REGION="us-east-1", JOBGATE_STAGE="test")
os.environ.pop("AWS_SESSION_TOKEN", None)

KEY_A, KEY_B = "key-acme-0123456789", "key-bobco-0123456789"
SECRET_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET_B = "whsec_ZmFrZXNlY3JldGZvcmJvYmNvMTIzNDU2"


HANDLERS = {"jobs": "run_jobs", "jobs_dlq": "fail_dead_jobs", "callbacks": "deliver_callbacks",
            "callbacks_dlq": "fail_dead_callbacks"}


@dataclasses.dataclass
class Env:
    """What a test gets: the runtime and helpers to run the queues by hand."""

    rt: Any
    queues: dict[str, str]

    def settings(self, **changes: Any) -> None:
        """Change settings for this test (they are frozen: swap them everywhere)."""
        new = dataclasses.replace(self.rt.settings, **changes)
        for part in (self.rt, self.rt.api, self.rt.api.view, self.rt.worker, self.rt.deliverer):
            part.settings = new

    def messages(self, kind: str = "jobs", wait: int = 0, max_n: int = 10) -> list[dict[str, Any]]:
        out = self.rt.clients.sqs.receive_message(
            QueueUrl=self.queues[kind], MaxNumberOfMessages=max_n, WaitTimeSeconds=wait,
            AttributeNames=["All"])
        return out.get("Messages", [])

    def arn(self, kind: str) -> str:
        return str(self.rt.clients.sqs.get_queue_attributes(
            QueueUrl=self.queues[kind], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

    def event(self, messages: list[dict[str, Any]], kind: str = "jobs") -> dict[str, Any]:
        from localrunner.pollers import to_event

        return to_event(messages, self.arn(kind), "us-east-1")

    def invoke(self, messages: list[dict[str, Any]], kind: str = "jobs") -> Any:
        """Call the app's SQS handler as Lambda would: its answer, or the exception it raised."""
        import app as app_module
        from localrunner.pollers import LambdaContext

        name = HANDLERS[kind]
        try:
            return app_module.app.handler_map[name](self.event(messages, kind), LambdaContext(name))
        except Exception as exc:  # noqa: BLE001  (as Lambda: the caller looks at it)
            return exc

    def deliver(self, messages: list[dict[str, Any]], kind: str = "jobs") -> Any:
        """invoke(), then delete what Lambda would delete (nothing when the handler raised)."""
        import app as app_module
        from localrunner.pollers import LambdaContext, run_batch

        name = HANDLERS[kind]
        return run_batch(self.rt.clients.sqs, self.queues[kind], self.arn(kind), "us-east-1",
                         messages, app_module.app.handler_map[name], LambdaContext(name))

    def run_queue(self, kind: str = "jobs", rounds: int = 20) -> int:
        """Deliver every visible message to its handler, as the local poller does."""
        from chalice.test import Client

        import app as app_module

        seen = 0
        with Client(app_module.app):
            for _ in range(rounds):
                msgs = self.messages(kind)
                if not msgs:
                    break
                seen += len(msgs)
                self.deliver(msgs, kind)
        return seen


STALL_RECEIVES = float(os.environ.get("JOBGATE_TEST_STALL_RECEIVES") or 0)


def stall_receives(sqs: Any, seconds: float) -> None:
    """Make every SQS receive take `seconds` longer, as on a loaded CI machine: a test that
    depends on wall-clock timing fails under it (JOBGATE_TEST_STALL_RECEIVES=2.5; on the
    memory queues too, see `env`)."""
    import time

    sqs.meta.events.register("before-call.sqs.ReceiveMessage",
                             lambda **_: time.sleep(seconds), unique_id="test-stall-receives")


# The two tiers (README.md "Testing"). A module or test marked `fast` runs on the in-memory
# adapters (chalicelib/memory.py, no moto), unless it is also marked `moto` (it needs moto's
# own clients: presigned downloads, botocore event hooks, worker services' DynamoDB). Every
# other test is given the `moto` mark here. The fast tier, `make test-fast`, is
# `-m "not moto and not slow"`; the second tier, `-m "moto or slow"`, adds the memory tests
# marked `slow` (they wait on the wall clock: retry intervals, deadlines); `--tier fast` or
# `--tier moto` picks one (the Makefile's way).
# JOBGATE_TEST_BACKEND=moto runs the memory tests on moto instead (the adapters' parity).
BACKEND = os.environ.get("JOBGATE_TEST_BACKEND", "")


TIERS = {"fast": "not moto and not slow", "moto": "moto or slow"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--tier", choices=sorted(TIERS),
                     help="one tier: fast (memory adapters) or moto (the rest); default both")


def pytest_configure(config: pytest.Config) -> None:
    tier = config.getoption("--tier")
    if tier:
        config.option.markexpr = TIERS[tier]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fast tier does not even import a test module with no `fast` mark (importing
    them all, moto and browsers included, took longer than running the tier)."""
    if config.getoption("--tier") != "fast" or collection_path.suffix != ".py" \
            or not collection_path.name.startswith("test_"):
        return None
    return "pytest.mark.fast" not in collection_path.read_text(encoding="utf-8")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("fast") is None:
            item.add_marker(pytest.mark.moto)


def on_moto(request: pytest.FixtureRequest) -> bool:
    return BACKEND == "moto" or request.node.get_closest_marker("moto") is not None


TENANTS = [("acme", KEY_A, SECRET_A), ("bobco", KEY_B, SECRET_B)]
SETTINGS = {"JOBGATE_ALLOW_PRIVATE_CALLBACKS": "true"}


@pytest.fixture
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    from chalicelib import runtime

    if not on_moto(request):
        from chalicelib.memory import build_runtime

        rt, aws = build_runtime(SETTINGS, "jobgate-test", jobs_visibility=30, tenants=TENANTS)
        if STALL_RECEIVES:
            receive = rt.clients.sqs.receive_message

            def stalled(**kw: Any) -> Any:
                import time

                time.sleep(STALL_RECEIVES)
                return receive(**kw)

            rt.clients.sqs.receive_message = stalled
        runtime.set_current(rt)
        try:
            yield Env(rt, dict(aws.urls))
        finally:
            runtime.set_current(None)
        return

    from moto import mock_aws

    from chalicelib.connections import create_clients
    from localrunner.provision import local_runtime

    with mock_aws():
        rt, names = local_runtime(
            create_clients("us-east-1"), "jobgate-test", "us-east-1", TENANTS, dict(SETTINGS),
            jobs_visibility=30)
        if STALL_RECEIVES:
            stall_receives(rt.clients.sqs, STALL_RECEIVES)
        queues = {"jobs": names["JOBGATE_JOBS_QUEUE_URL"], "jobs_dlq": names["JOBGATE_JOBS_DLQ_URL"],
                  "callbacks": names["JOBGATE_CALLBACKS_QUEUE_URL"],
                  "callbacks_dlq": names["JOBGATE_CALLBACKS_DLQ_URL"]}
        try:
            yield Env(rt, queues)
        finally:
            runtime.set_current(None)


@pytest.fixture
def http(env: Env) -> Iterator[Any]:
    """Chalice's test client; `http.post(path, json=..., key=...)` adds auth and a JSON body."""
    from chalice.test import Client

    import app as app_module
    from localrunner.gateway import install_greedy_paths

    install_greedy_paths()  # as API Gateway and the local runner: /{proxy+} catches the rest
    with Client(app_module.app) as client:
        yield Http(client.http)


class Http:
    def __init__(self, raw: Any):
        self.raw = raw

    def request(self, method: str, path: str, *, key: str | None = KEY_A, json_body: Any = None,
                body: bytes | str | None = None, headers: dict[str, str] | None = None) -> Any:
        hdrs = dict(headers or {})
        if key is not None:
            hdrs.setdefault("Authorization", f"Bearer {key}")
        if json_body is not None:
            body = json.dumps(json_body)
            hdrs.setdefault("Content-Type", "application/json")
        hdrs.setdefault("Host", "jobs.example.com")
        return self.raw.request(method=method, path=path, headers=hdrs, body=body or b"")

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:  # noqa: A002
        return self.request("POST", path, json_body=json, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def body(resp: Any) -> Any:
    return json.loads(resp.body) if resp.body else None


@pytest.fixture
def add_service() -> Iterator[Any]:
    """Register test-only services; they are removed again after the test."""
    from chalicelib import services
    from chalicelib.services import Service

    services.discover()  # the built-ins first
    added: list[str] = []

    def add(name: str, handler: Any, **kw: Any) -> Any:
        kw.setdefault("timeout_seconds", 30)
        added.append(name)
        return services.register(Service(name=name, handler=handler, description="test", **kw))

    yield add
    for name in added:
        services.unregister(name)
