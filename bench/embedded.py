"""The embedded AWS (moto, in process) a benchmark runs on: the runtime with metered clients,
and Lambda's event source mapping played by hand (`pump`)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.metering import PROJECTIONS, Meter, index_projections

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
REGION = "us-east-1"
# What a Lambda-shaped test harness sees from an SQS handler; the table's tenants.
BENCH_KEY, BENCH_SECRET = "bench-key-0123456789abcdef", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LIST_KEY = "bench-list-key-0123456789"


# -- small helpers --------------------------------------------------------------------------

def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


class _Null(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The app's JSON log lines and EMF metrics go to stdout (CloudWatch on AWS): drop them
    while measuring, as Lambda's log pipe would take them."""
    with contextlib.redirect_stdout(_Null()):
        yield


def clean_env() -> dict[str, str]:
    """This process's environment without anything that could point boto3 at real AWS."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "JOBGATE_", "JOB_", "CALLBACK_", "RESULT_"))}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION=REGION)
    return env


# -- the embedded AWS, in process ------------------------------------------------------------

@dataclass
class Embedded:
    rt: Any
    app: Any
    names: dict[str, str]
    meter: Meter
    poller: Any  # SQS client of the "event source mapping" (counted apart)


@contextlib.contextmanager
def embedded() -> Iterator[Embedded]:
    os.environ.update(clean_env())
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(PROJECT))
    from moto import mock_aws

    with mock_aws():
        from chalicelib import runtime
        from chalicelib.connections import create_clients
        from localrunner.provision import local_runtime

        clients = create_clients(REGION)
        rt, names = local_runtime(
            clients, "jobgate-bench", REGION,
            [("bench", BENCH_KEY, BENCH_SECRET), ("lister", LIST_KEY, BENCH_SECRET)],
            {"JOBGATE_ALLOW_PRIVATE_CALLBACKS": "true", "JOBGATE_MAX_QUEUE_DEPTH": "10000000",
             "JOBGATE_TENANT_MAX_ACTIVE": "10000000"}, jobs_visibility=30)
        PROJECTIONS.update(index_projections())
        raw = create_clients(REGION).dynamodb  # reads the items back, unmetered

        def peek(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
            return raw.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

        meter = Meter(peek=peek)
        meter.attach(clients.dynamodb, "ours")
        meter.attach(clients.sqs, "ours")
        meter.attach(clients.s3, "ours")
        poller = create_clients(REGION).sqs
        meter.attach(poller, "event source mapping")
        import app as app_module

        try:
            yield Embedded(rt, app_module, names, meter, poller)
        finally:
            runtime.set_current(None)


def pump(e: Embedded, kind: str, durations: list[float]) -> int:
    """One poll of a queue and one handler invocation, as Lambda's event source mapping does
    (ReceiveMessage, invoke, DeleteMessageBatch for what did not fail)."""
    from localrunner.pollers import LambdaContext, run_batch

    url = {"jobs": e.names["JOBGATE_JOBS_QUEUE_URL"],
           "callbacks": e.names["JOBGATE_CALLBACKS_QUEUE_URL"]}[kind]
    handler = {"jobs": "run_jobs", "callbacks": "deliver_callbacks"}[kind]
    messages = e.poller.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                        AttributeNames=["All"]).get("Messages", [])
    if not messages:
        return 0
    arn = f"arn:aws:sqs:{REGION}:123456789012:{url.rsplit('/', 1)[-1]}"
    call = e.app.app.handler_map[handler]

    def timed(event: dict[str, Any], context: Any) -> Any:
        started = time.perf_counter()
        try:
            return call(event, context)
        finally:
            durations.append(time.perf_counter() - started)

    run_batch(e.poller, url, arn, REGION, messages, timed, LambdaContext(handler))
    return len(messages)


def lambda_memory_mb() -> dict[str, int]:
    """Memory per function from .chalice/config.json (stage prod, else dev, else 128)."""
    out = {"api_handler": 128, "run_jobs": 128, "deliver_callbacks": 128}
    try:
        config = json.loads((PROJECT / ".chalice" / "config.json").read_text())
    except (OSError, ValueError):
        return out
    stages = config.get("stages", {})
    stage = stages.get("prod") or stages.get("dev") or {}
    default = int(stage.get("lambda_memory_size") or config.get("lambda_memory_size") or 128)
    for fn in out:
        out[fn] = int(stage.get("lambda_functions", {}).get(fn, {}).get("lambda_memory_size")
                      or default)
    return out
