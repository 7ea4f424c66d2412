"""Layering: the lifecycle speaks the ports' vocabulary (chalicelib/ports.py); only the AWS
adapters know boto3/botocore. Also: `store.apply` refuses what it cannot apply."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.attributes import apply
from chalicelib.jobs import QUEUED, Job

ROOT = Path(__file__).resolve().parent.parent
LIFECYCLE = ["api.py", "worker.py", "callbacks.py", "runtime.py", "workers.py", "batch.py",
             "tenants.py"]
AWS = ("boto3", "botocore")
# What runs a job's lifecycle, loaded without the AWS SDK (directly or through another
# module): the fast tier runs them on in-memory ports, and the API's cold start is lighter.
LOADS_NO_SDK = ["api", "worker", "workers", "callbacks", "webhooks", "jobs", "views",
                "services", "batch", "leases", "messages", "limits", "attributes", "after_end",
                "records", "newjob", "cursors", "storable"]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", LIFECYCLE)
def test_the_lifecycle_imports_no_aws_sdk(module: str) -> None:
    found = {m for m in imported_modules(ROOT / "chalicelib" / module)
             if m.split(".")[0] in AWS}
    assert not found, f"chalicelib/{module} imports {sorted(found)}: use chalicelib/ports.py"


def test_the_lifecycle_loads_no_aws_sdk_even_indirectly() -> None:
    """In a fresh interpreter: importing the lifecycle modules leaves boto3 and botocore
    out of sys.modules (the per-file check above misses what an imported module imports)."""
    code = ("import sys\n"
            f"for m in {LOADS_NO_SDK!r}: __import__('chalicelib.' + m)\n"
            "print(sorted({k.split('.')[0] for k in sys.modules} & {'boto3', 'botocore'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_check_catches_a_module_that_loads_the_sdk() -> None:
    code = "import sys; import chalicelib.store; print('botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "True"


def test_dynamodb_number_rules_are_boto3s() -> None:
    from boto3.dynamodb.types import DYNAMODB_CONTEXT

    from chalicelib.limits import _DYNAMODB_NUMBERS

    assert repr(_DYNAMODB_NUMBERS) == repr(DYNAMODB_CONTEXT)


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from botocore.exceptions import ClientError\n")
    assert "botocore.exceptions" in imported_modules(sample)


def test_adapters_raise_the_ports_exceptions_not_botocores() -> None:
    from chalicelib.blobs import BlobStore
    from chalicelib.leasestore import LeaseStore
    from chalicelib.ports import BlobsUnavailable, Conflict, QueueUnavailable, StoreUnavailable
    from chalicelib.queue import Dispatcher
    from chalicelib.store import JobStore
    from chalicelib.workerkeys import WorkerKeyStore

    class Down:
        def __getattr__(self, name: str):  # every call fails as the SDK would
            from botocore.exceptions import ClientError, EndpointConnectionError

            def call(*a: object, **kw: object) -> None:
                if name == "put_item":
                    raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}},
                                      name)
                if name == "send_message":
                    raise EndpointConnectionError(endpoint_url="https://sqs")
                raise ClientError({"Error": {"Code": "InternalServerError"}}, name)

            return call

    store, queue, blobs = JobStore(Down(), "t"), Dispatcher(Down(), "q", "c"), BlobStore(Down(), "b")
    job = Job(tenant="acme", job_id="j", service="echo", status=QUEUED, created_at=1.0,
              expires_at=2.0)
    with pytest.raises(StoreUnavailable) as info:
        store.get("acme", "j", 1.0)
    assert info.value.code == "InternalServerError"
    with pytest.raises(Conflict):
        store.create(job)
    with pytest.raises(QueueUnavailable) as q:
        queue.send_job("acme", "j")
    assert q.value.code == "EndpointConnectionError"
    with pytest.raises(BlobsUnavailable):
        blobs.put("k", b"x", "text/plain")
    with pytest.raises(StoreUnavailable) as lease:
        LeaseStore(Down(), "t").candidates("W#report", 1.0, 5)
    assert lease.value.code == "InternalServerError"
    with pytest.raises(StoreUnavailable):
        WorkerKeyStore(Down(), "t").authenticate("Bearer jgw_x")


def test_the_job_statuses_are_one_list() -> None:
    from typing import get_args

    from chalicelib.jobs import STATUSES
    from chalicelib.models import JobStatus

    assert get_args(JobStatus) == STATUSES


def test_apply_refuses_a_misspelled_attribute() -> None:
    job = Job(tenant="acme", job_id="j", service="echo", status=QUEUED, created_at=1.0,
              expires_at=2.0)
    assert apply(job, {"resultKey": "k", "validUntil": 5.0}).valid_until == 5.0
    with pytest.raises(ValueError, match="resultkey"):
        apply(job, {"resultkey": "k"})


def test_a_bug_is_a_500_and_aws_not_answering_a_503() -> None:
    from botocore.exceptions import ClientError

    import app
    from chalicelib.ports import StoreUnavailable

    bug = app.unexpected(KeyError("oops"), "GET", "/v1/jobs")
    assert bug.status == 500 and bug.code == "internal_error" and "Retry-After" not in bug.headers
    for down in (StoreUnavailable("InternalServerError"),
                 ClientError({"Error": {"Code": "ThrottlingException"}}, "GetItem")):
        err = app.unexpected(down, "GET", "/v1/jobs")
        assert err.status == 503 and err.headers["Retry-After"] == "5"
