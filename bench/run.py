"""`make bench` (`python -m bench.run`): what one job costs on AWS and how fast Jobgate is,
measured in one run on the embedded AWS (moto), printed as tables and written to
bench/results.json.

1. AWS requests per job lifecycle (submit → worker runs it and stores the result → webhook →
   one status read), counted from botocore's own `before-call` events on the runtime's
   clients, by operation; the SQS poller's ReceiveMessage/DeleteMessageBatch (Lambda's event
   source mapping on AWS) counted apart; priced per million jobs at AWS list prices.
2. Cold start: `import app` in a fresh interpreter against `import chalice, boto3, pydantic`.
3. Submit cost: POST /v1/jobs against a bare Chalice route doing one PutItem + one SendMessage.
4. Listing cost: items read and time for one page of 20 with 1,000 and 10,000 jobs stored.
5. Throughput of the local runner: N echo jobs end to end over HTTP.
6. Memory: the dataload handler's peak allocation per MB of its input document.

Benchmarks measure; they assert nothing (the tests do that)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
REGION = "us-east-1"

# AWS public list prices, us-east-1, no free tier (checked against the pricing pages).
PRICES = {
    "dynamodb_write_request_unit": 0.625 / 1e6,   # on-demand, per WRU
    "dynamodb_read_request_unit": 0.125 / 1e6,    # on-demand, per RRU
    "sqs_request": 0.40 / 1e6,                    # standard queue, per 64 KB request
    "s3_put_class_request": 0.005 / 1e3,          # PUT, COPY, POST, LIST
    "s3_get_class_request": 0.0004 / 1e3,         # GET, HEAD and the rest (DELETE is free)
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000166667,             # x86
    "api_gateway_rest_request": 3.50 / 1e6,       # REST API (what chalice deploys), first 333 M
}
S3_PUT_CLASS = {"PutObject", "CopyObject", "UploadPart", "CreateMultipartUpload",
                "CompleteMultipartUpload", "ListObjectsV2", "ListObjects"}
S3_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}

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


# -- DynamoDB request units (the billing model, applied to what botocore saw) ----------------

def value_size(value: dict[str, Any]) -> int:
    (kind, x), = value.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        digits = len(x.lstrip("-").replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind == "B":
        return len(x)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: e}) for e in x)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_size(e) for k, e in x.items())
    return 0


def item_size(item: dict[str, Any]) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def _key(item_or_key: dict[str, Any]) -> tuple[str, str]:
    return (item_or_key.get("pk", {}).get("S", ""), item_or_key.get("sk", {}).get("S", ""))


def _units(size: int, block: int) -> int:
    return max(1, math.ceil(size / block))


# -- counting AWS requests from botocore's events --------------------------------------------

@dataclass
class Meter:
    """Counts every AWS call by (origin, phase, service, operation) and estimates DynamoDB
    request units from the real parameters and answers."""

    enabled: bool = False
    phase: str = "setup"
    calls: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    wru: Counter[str] = field(default_factory=Counter)
    rru: Counter[str] = field(default_factory=Counter)
    items: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    peek: Callable[[str, dict[str, Any]], dict[str, Any] | None] = lambda table, key: None
    queries: list[dict[str, int]] = field(default_factory=list)

    def attach(self, client: Any, origin: str) -> None:
        events = client.meta.events
        events.register("before-parameter-build.*.*", self._params)
        events.register("before-call.*.*", lambda **kw: self._before(origin, **kw))
        events.register("after-call.*.*", lambda **kw: self._after(origin, **kw))

    def reset(self) -> None:
        self.calls.clear()
        self.wru.clear()
        self.rru.clear()
        self.queries.clear()

    @staticmethod
    def _params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params

    def _before(self, origin: str, event_name: str, context: dict[str, Any] | None = None,
                **_: Any) -> None:
        if event_name.startswith("before-call.dynamodb.") and context is not None:
            self._pre_images(event_name.rsplit(".", 1)[-1], context)
        if self.enabled:
            _, service, op = event_name.split(".", 2)
            self.calls[(origin, self.phase, service, op)] += 1

    def _pre_images(self, op: str, context: dict[str, Any]) -> None:
        """The items a write is about to change, as they are now (its 'before')."""
        params = context.get("bench_params") or {}
        specs = [params] if op in ("PutItem", "UpdateItem", "DeleteItem") else \
            [next(iter(e.values())) for e in params.get("TransactItems", [])] \
            if op == "TransactWriteItems" else []
        for spec in specs:
            key = spec.get("Key") or {k: spec["Item"][k] for k in ("pk", "sk")}
            self.items[_key(key)] = self.peek(spec["TableName"], key)

    def _after(self, origin: str, event_name: str, parsed: dict[str, Any], context: dict[str, Any],
               http_response: Any, **_: Any) -> None:
        _, service, op = event_name.split(".", 2)
        if service != "dynamodb":
            return
        params = context.get("bench_params") or {}
        ok = http_response.status_code < 300
        wru, rru = self._request_units(op, params, parsed, ok)
        if self.enabled:
            self.wru[self.phase] += wru
            self.rru[self.phase] += rru
            if op == "BatchGetItem":  # a listing's page read by key
                n = sum(len(v) for v in parsed.get("Responses", {}).values())
                self.queries.append({"returned": 0, "count": 0, "scanned": 0, "fetched": n})
            if op == "Query":
                self.queries.append({"returned": len(parsed.get("Items", [])),
                                     "count": int(parsed.get("Count", 0)),
                                     "scanned": int(parsed.get("ScannedCount", 0))})

    def _request_units(self, op: str, params: dict[str, Any], parsed: dict[str, Any], ok: bool
                       ) -> tuple[float, float]:
        """(write units, read units) of one call, from the items as they are in the table
        before and after it (read back through an unmetered client): DynamoDB's rules.
        Table: 1 WRU per KB of the larger of the item before and after (a refused condition
        still costs the item's size), doubled in a transaction. Each GSI, per its projection
        (localrunner/provision.py, the same as infra/template.yaml): an entry appearing is a
        put, disappearing a delete, a changed key a delete and a put, a changed projected
        attribute one write, anything else nothing; 1 WRU per KB of the entry. Reads: 1 RRU
        per 4 KB (eventually consistent: half), index queries by the entries evaluated."""
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            key = params.get("Key") or {k: params["Item"][k] for k in ("pk", "sk")}
            before = self.items.get(_key(key))
            after = self.peek(params["TableName"], key)
            self.items[_key(key)] = after
            if not ok:
                return _units(item_size(before) if before else 1, 1024), 0
            return write_units(before, after), 0
        if op == "TransactWriteItems":
            total = 0
            for entry in params.get("TransactItems", []):
                (kind, spec), = entry.items()
                key = spec.get("Key") or {k: spec["Item"][k] for k in ("pk", "sk")}
                before = self.items.get(_key(key))
                after = self.peek(spec["TableName"], key)
                self.items[_key(key)] = after
                total += write_units(before, after, transaction=True)
            return total, 0
        if op == "GetItem":
            item = parsed.get("Item")
            size = item_size(item) if item else 1
            return 0, _units(size, 4096) * (1.0 if params.get("ConsistentRead") else 0.5)
        if op == "BatchGetItem":
            items = [i for v in parsed.get("Responses", {}).values() for i in v]
            return 0, sum(_units(item_size(i), 4096) * 0.5 for i in items)
        if op == "Query":
            index = params.get("IndexName")
            scanned = int(parsed.get("ScannedCount", 0))
            if index:  # the index entries evaluated, at the size of one entry
                entry = INDEX_ENTRY_BYTES.get(index, 100)
                size = scanned * entry
            else:
                size = sum(item_size(i) for i in parsed.get("Items", []))
            return 0, _units(size, 4096) * (1.0 if params.get("ConsistentRead") else 0.5)
        return 0, 0


def index_projections() -> dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]]:
    """Each GSI of the table: (its key attributes, its projected non-key attributes or None
    for ALL), as localrunner/provision.py creates them."""
    from localrunner.provision import CLAIM_INDEX, INDEXES, LIST_PROJECTION

    out: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {}
    for name, pk in INDEXES:
        out[name] = ((pk, "gsk"), tuple(LIST_PROJECTION.get("NonKeyAttributes", ())))
    out[CLAIM_INDEX["IndexName"]] = (
        tuple(k["AttributeName"] for k in CLAIM_INDEX["KeySchema"]), ())
    return out


# A listing-index entry (keys, expiresAt, service) is ~100 bytes; reads of an index are
# priced at that size per entry evaluated.
INDEX_ENTRY_BYTES: dict[str, int] = {}


def index_entry(item: dict[str, Any] | None, keys: tuple[str, ...],
                projected: tuple[str, ...] | None) -> dict[str, Any] | None:
    """The item's entry in one GSI (None when it lacks the index key: sparse)."""
    if not item or any(k not in item for k in keys):
        return None
    if projected is None:
        return dict(item)
    wanted = {"pk", "sk", *keys, *projected}
    return {k: v for k, v in item.items() if k in wanted}


def write_units(before: dict[str, Any] | None, after: dict[str, Any] | None,
                transaction: bool = False) -> int:
    sizes = [item_size(i) for i in (before, after) if i]
    total = _units(max(sizes, default=1), 1024) * (2 if transaction else 1)
    for keys, projected in PROJECTIONS.values():
        old, new = index_entry(before, keys, projected), index_entry(after, keys, projected)
        if old is None and new is None:
            continue
        if old is not None and new is not None:
            if all(old.get(k) == new.get(k) for k in keys):
                total += 0 if old == new else _units(item_size(new), 1024)
            else:
                total += 1 + _units(item_size(new), 1024)  # delete, then put
        else:
            total += _units(item_size(new or old), 1024)
    return total


PROJECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {}


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
    from localrunner.pollers import LambdaContext, to_event

    url = {"jobs": e.names["JOBGATE_JOBS_QUEUE_URL"],
           "callbacks": e.names["JOBGATE_CALLBACKS_QUEUE_URL"]}[kind]
    handler = {"jobs": "run_jobs", "callbacks": "deliver_callbacks"}[kind]
    messages = e.poller.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                        AttributeNames=["All"]).get("Messages", [])
    if not messages:
        return 0
    arn = f"arn:aws:sqs:{REGION}:123456789012:{url.rsplit('/', 1)[-1]}"
    started = time.perf_counter()
    try:
        result = e.app.app.handler_map[handler](to_event(messages, arn, REGION),
                                                LambdaContext(handler))
    except Exception:  # noqa: BLE001  (Lambda: the batch stays on the queue)
        durations.append(time.perf_counter() - started)
        return len(messages)
    durations.append(time.perf_counter() - started)
    failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
    done = [m for m in messages if m["MessageId"] not in failed]
    if done:
        e.poller.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
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


# -- 1. AWS requests per job ----------------------------------------------------------------

def bench_requests(e: Embedded, jobs: int, warmup: int = 3) -> dict[str, Any]:
    from chalice.test import Client

    from tests.receiver import Receiver

    durations: dict[str, list[float]] = defaultdict(list)
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json",
               "Host": "jobs.example.com"}
    meter = e.meter
    with Receiver([200]) as rx, Client(e.app.app) as client, quiet():
        for i in range(warmup + jobs):
            meter.enabled = i == 0 or i >= warmup  # the first job shows the cold caches
            timed = durations if i >= warmup else defaultdict(list)
            meter.phase = "submit"
            started = time.perf_counter()
            resp = client.http.post("/v1/jobs", headers=headers, body=json.dumps(
                {"service": "echo", "input": {"n": i, "text": "x" * 200}, "callbackUrl": rx.url}))
            timed["submit"].append(time.perf_counter() - started)
            if resp.status_code != 202:
                raise RuntimeError(f"submit answered {resp.status_code}: {resp.body!r}")
            job_id = json.loads(resp.body)["jobId"]
            meter.phase = "worker"
            if pump(e, "jobs", timed["worker"]) != 1:
                raise RuntimeError("the job message was not there")
            meter.phase = "callback"
            if pump(e, "callbacks", timed["callback"]) != 1:
                raise RuntimeError("the callback message was not there")
            meter.phase = "status read"
            started = time.perf_counter()
            resp = client.http.get(f"/v1/jobs/{job_id}", headers=headers)
            timed["status read"].append(time.perf_counter() - started)
            job = json.loads(resp.body)
            if job["status"] != "succeeded" or job["callback"]["state"] != "delivered":
                raise RuntimeError(f"the lifecycle did not complete: {job}")
            if i == 0:
                cold: Counter[str] = Counter()
                for (origin, _, service, op), n in meter.calls.items():
                    if origin == "ours":
                        cold[f"{service}.{op}"] += n
                meter.reset()
        meter.enabled = False
        if len(rx.requests) != warmup + jobs:
            raise RuntimeError(f"{len(rx.requests)} webhooks for {warmup + jobs} jobs")

    ours = {k: v / jobs for k, v in meter.calls.items() if k[0] == "ours"}
    esm = {k: v / jobs for k, v in meter.calls.items() if k[0] != "ours"}
    by_phase: dict[str, dict[str, float]] = defaultdict(dict)
    for (_, phase, service, op), n in sorted(ours.items()):
        by_phase[phase][f"{service}.{op}"] = round(n, 3)
    esm_ops: dict[str, float] = defaultdict(float)
    for (_, _, service, op), n in esm.items():
        esm_ops[f"{service}.{op}"] += n
    total = sum(ours.values())

    # Cost per million jobs.
    def per_million(price: float, count: float) -> float:
        return round(price * count * 1e6, 4)

    sqs_ours = sum(n for (_, _, s, _), n in ours.items() if s == "sqs")
    s3_put = sum(n for (_, _, s, op), n in ours.items() if s == "s3" and op in S3_PUT_CLASS)
    s3_get = sum(n for (_, _, s, op), n in ours.items()
                 if s == "s3" and op not in S3_PUT_CLASS | S3_FREE)
    wru = sum(meter.wru.values()) / jobs
    rru = sum(meter.rru.values()) / jobs
    memory = lambda_memory_mb()
    seconds = {phase: statistics.mean(d) for phase, d in durations.items()}
    gb_s = (seconds["submit"] * memory["api_handler"] + seconds["status read"] * memory["api_handler"]
            + seconds["worker"] * memory["run_jobs"]
            + seconds["callback"] * memory["deliver_callbacks"]) / 1024
    lambda_invocations = 4  # api (submit), worker, callback, api (status read)
    cost = {
        "dynamodb": per_million(PRICES["dynamodb_write_request_unit"], wru)
        + per_million(PRICES["dynamodb_read_request_unit"], rru),
        "sqs": per_million(PRICES["sqs_request"], sqs_ours),
        "s3": per_million(PRICES["s3_put_class_request"], s3_put)
        + per_million(PRICES["s3_get_class_request"], s3_get),
        "lambda": per_million(PRICES["lambda_request"], lambda_invocations)
        + per_million(PRICES["lambda_gb_second"], gb_s),
    }
    cost["total"] = round(sum(cost.values()), 4)
    esm_requests = sum(esm_ops.values())
    # Requests only (no compute): every AWS request a job causes, API Gateway's included.
    requests_only = {
        "dynamodb": cost["dynamodb"], "sqs": cost["sqs"],
        "sqs_event_source_mapping": per_million(PRICES["sqs_request"], esm_requests),
        "s3": cost["s3"], "lambda_requests": per_million(PRICES["lambda_request"],
                                                         lambda_invocations),
        "api_gateway_rest": per_million(PRICES["api_gateway_rest_request"], 2),
    }
    requests_only["total"] = round(sum(requests_only.values()), 4)
    extra = {
        "sqs_event_source_mapping": per_million(PRICES["sqs_request"], esm_requests),
        "api_gateway_rest": per_million(PRICES["api_gateway_rest_request"], 2),
        "result_download_s3_get": per_million(PRICES["s3_get_class_request"], 1),
    }
    return {
        "aws_requests_per_job": round(total, 3),
        "by_phase": dict(by_phase),
        "event_source_mapping_per_job": {k: round(v, 3) for k, v in sorted(esm_ops.items())},
        "first_job_cold_caches": {"requests": sum(cold.values()), "by_operation": dict(cold)},
        "cache_refreshes": "per container, amortized over the requests it serves: API key and "
                           "tenant (GetItem x2, 5 s), callback tenant (GetItem, 5 s), active jobs "
                           "(Query x2, 5 s), queue depth (GetQueueAttributes, 10 s)",
        "dynamodb_request_units_per_job": {
            "write": round(wru, 2), "read": round(rru, 2),
            "write_by_phase": {k: round(v / jobs, 2) for k, v in meter.wru.items()},
            "read_by_phase": {k: round(v / jobs, 2) for k, v in meter.rru.items()},
        },
        "lambda": {"invocations_per_job": lambda_invocations, "memory_mb": memory,
                   "mean_duration_ms_in_process": {k: round(v * 1000, 2) for k, v in seconds.items()},
                   "gb_seconds_per_job": round(gb_s, 6)},
        "cost_usd_per_million_jobs": cost,
        "usd_per_million_jobs_requests_only": requests_only,
        "cost_usd_per_million_jobs_not_included": extra,
        "prices_usd": PRICES,
        "jobs_measured": jobs, "warmup_jobs": warmup,
    }


# -- 2. cold start ---------------------------------------------------------------------------

IMPORT_PROBE = ("import time\nt, c = time.perf_counter(), time.process_time()\n{stmt}\n"
                "print(time.perf_counter() - t, time.process_time() - c)\n")


def bench_cold_import(runs: int = 7) -> dict[str, Any]:
    python = sys.executable
    env = clean_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def once(stmt: str) -> tuple[float, float, float]:
        """(import wall s, process wall s, import CPU s)"""
        started = time.perf_counter()
        out = subprocess.run([python, "-c", IMPORT_PROBE.format(stmt=stmt)], cwd=PROJECT, env=env,
                             capture_output=True, text=True, timeout=120, check=True)
        wall, cpu = map(float, out.stdout.strip().splitlines()[-1].split())
        return wall, time.perf_counter() - started, cpu

    app_stmt, base_stmt = "import app", "import chalice, boto3, pydantic"
    once(app_stmt)  # warm the file cache and __pycache__ once for both
    once(base_stmt)
    app_runs, base_runs = [], []
    for _ in range(runs):  # interleaved, so drift hits both alike
        app_runs.append(once(app_stmt))
        base_runs.append(once(base_stmt))
    app_s = statistics.median(r[0] for r in app_runs)
    base_s = statistics.median(r[0] for r in base_runs)
    cpu = [statistics.median(r[2] for r in runs_) for runs_ in (app_runs, base_runs)]
    return {
        "cold_import_ratio": round(app_s / base_s, 3),
        # The same in CPU time: steadier than wall time on a machine busy with other work.
        "cold_import_cpu_ratio": round(cpu[0] / cpu[1], 3),
        "import_app_ms": round(app_s * 1000, 1),
        "import_chalice_boto3_pydantic_ms": round(base_s * 1000, 1),
        "process_wall_ms": {"app": round(statistics.median(r[1] for r in app_runs) * 1000, 1),
                            "baseline": round(statistics.median(r[1] for r in base_runs) * 1000, 1)},
        "runs": runs,
    }


# -- 3. submit cost against a bare route ----------------------------------------------------

def bare_app(e: Embedded) -> Any:
    """The least a submit can do: one PutItem and one SendMessage."""
    from chalice import Chalice, Response

    from chalicelib.ids import new_job_id

    bare = Chalice(app_name="bench-bare")
    db, sqs = e.rt.clients.dynamodb, e.rt.clients.sqs
    table, queue = e.rt.settings.table_name, e.rt.settings.jobs_queue_url

    @bare.route("/v1/jobs", methods=["POST"])
    def submit() -> Response:
        data = bare.current_request.json_body or {}
        job_id = new_job_id()
        db.put_item(TableName=table, Item={
            "pk": {"S": f"T#bare#J#{job_id}"}, "sk": {"S": "JOB"}, "status": {"S": "queued"},
            "service": {"S": str(data.get("service"))}, "input": {"S": json.dumps(data.get("input"))}})
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"tenant": "bare", "jobId": job_id}))
        return Response(status_code=202, body={"jobId": job_id, "status": "queued"})

    return bare


def bench_submit(e: Embedded, runs: int = 200, warmup: int = 30) -> dict[str, Any]:
    from chalice.test import Client

    headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json",
               "Host": "jobs.example.com"}
    payload = json.dumps({"service": "echo", "input": {"n": 1, "text": "x" * 200}})
    real_t, bare_t = [], []
    with Client(e.app.app) as real, Client(bare_app(e)) as bare, quiet():
        def timed(client: Any, out: list[float] | None) -> None:
            started = time.perf_counter()
            resp = client.http.post("/v1/jobs", headers=headers, body=payload)
            if out is not None:
                out.append(time.perf_counter() - started)
            if resp.status_code != 202:
                raise RuntimeError(f"submit answered {resp.status_code}: {resp.body!r}")

        for _ in range(warmup):
            timed(real, None)
            timed(bare, None)
        for i in range(runs):  # interleaved, alternating who goes first
            first, second = ((real, real_t), (bare, bare_t)) if i % 2 else \
                ((bare, bare_t), (real, real_t))
            timed(*first)
            timed(*second)
    purge(e)
    real_ms, bare_ms = statistics.median(real_t) * 1000, statistics.median(bare_t) * 1000
    return {
        "submit_overhead_ratio": round(real_ms / bare_ms, 3),
        "submit_median_ms": round(real_ms, 3), "bare_median_ms": round(bare_ms, 3),
        "submit_p90_ms": round(percentile(real_t, 90) * 1000, 3),
        "bare_p90_ms": round(percentile(bare_t, 90) * 1000, 3),
        "runs": runs,
    }


def purge(e: Embedded) -> None:
    """Empty the jobs queue (the submit bench leaves messages nobody runs)."""
    e.rt.clients.sqs.purge_queue(QueueUrl=e.names["JOBGATE_JOBS_QUEUE_URL"])


# -- 4. listing cost ------------------------------------------------------------------------

def insert_jobs(e: Embedded, tenant: str, n: int, start: float) -> None:
    from chalicelib.ids import new_job_id
    from chalicelib.jobs import Job
    from chalicelib.store import job_to_item

    db, table = e.rt.clients.dynamodb, e.rt.settings.table_name
    batch: list[dict[str, Any]] = []
    for i in range(n):
        created = start + i * 0.001
        job_id = new_job_id(created)
        job = Job(tenant=tenant, job_id=job_id, service="echo", status="succeeded",
                  created_at=created, expires_at=created + 30 * 86400, input={"n": i},
                  attempts=1, started_at=created + 0.05, completed_at=created + 0.1,
                  progress_percent=100.0, result_key=f"results/{tenant}/{job_id}/t",
                  result_type="application/json", result_size=12, valid_until=created + 86400,
                  log_inline="attempt 1 of 3 started\nsucceeded\n", log_size=40,
                  base_url="https://jobs.example.com")
        batch.append({"PutRequest": {"Item": job_to_item(job)}})
        if len(batch) == 25 or i == n - 1:
            pending = {table: batch}
            while pending:
                pending = db.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            batch = []


def bench_listing(e: Embedded, sizes: tuple[int, ...] = (1_000, 10_000), reads: int = 5
                  ) -> dict[str, Any]:
    from chalice.test import Client

    headers = {"Authorization": f"Bearer {LIST_KEY}", "Host": "jobs.example.com"}
    out: dict[str, Any] = {}
    stored = 0
    start = time.time() - 86400
    with Client(e.app.app) as client, quiet():
        for size in sizes:
            insert_jobs(e, "lister", size - stored, start + stored * 0.001)
            stored = size
            client.http.get("/v1/jobs?limit=1", headers=headers)  # warm the API key cache
            times, meter = [], e.meter
            for i in range(reads):
                meter.reset()
                meter.enabled, meter.phase = i == 0, "list"
                started = time.perf_counter()
                resp = client.http.get("/v1/jobs?limit=20", headers=headers)
                times.append(time.perf_counter() - started)
                meter.enabled = False
                if i == 0:
                    page = json.loads(resp.body)
                    queries = list(meter.queries)
                    rru = meter.rru["list"]
                    calls = sum(meter.calls.values())
            if len(page["jobs"]) != 20 or not page["nextCursor"]:
                raise RuntimeError("the listing did not return a full page")
            second = client.http.get(f"/v1/jobs?limit=20&cursor={page['nextCursor']}",
                                     headers=headers)
            if len(json.loads(second.body)["jobs"]) != 20:
                raise RuntimeError("the second page is not full")
            out[str(size)] = {
                "items_returned": sum(q["returned"] for q in queries),
                "scanned_count": sum(q["scanned"] for q in queries),
                "jobs_read_by_key": sum(q.get("fetched", 0) for q in queries),
                "queries": sum(1 for q in queries if "fetched" not in q), "aws_requests": calls,
                "read_request_units": rru,
                "median_ms": round(statistics.median(times) * 1000, 2),
            }
    first, last = out[str(sizes[0])], out[str(sizes[-1])]
    return {
        "list_items_read_1k": max(first["items_returned"], first["scanned_count"])
        + first["jobs_read_by_key"],
        "list_items_read_10k": max(last["items_returned"], last["scanned_count"])
        + last["jobs_read_by_key"],
        "by_table_size": out,
        "note": "items read = ScannedCount over the page's Query calls on the 16 shards of "
                "the listing index (every entry DynamoDB read, returned or filtered out) plus "
                "the page's jobs read by key (BatchGetItem); "
                "moto's Query scans and sorts the whole table, so its time grows with the "
                "table while DynamoDB's does not: the flat figure is the items read",
    }


# -- 5. throughput of the local runner -------------------------------------------------------

def bench_throughput(jobs: int, clients: int) -> dict[str, Any]:
    import http.client

    sys.path.insert(0, str(PROJECT))
    from tests.live import live_runner

    limits = {"JOBGATE_MAX_QUEUE_DEPTH": "10000000", "JOBGATE_TENANT_MAX_ACTIVE": "10000000"}
    with live_runner(**limits) as runner:
        port = int(runner.url.rsplit(":", 1)[1])
        headers = {"Authorization": f"Bearer {runner.api_key}", "Content-Type": "application/json"}

        def connect() -> http.client.HTTPConnection:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", "/v1/health")
            conn.getresponse().read()
            return conn

        def call(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None
                 ) -> tuple[int, Any]:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"null")

        # Keep-alive connections opened one by one (the runner's listen backlog is small).
        conns = [connect() for _ in range(clients)]
        for i in range(5):  # warm the runner's caches and code paths
            call(conns[0], "POST", "/v1/jobs", {"service": "echo", "input": {"warm": i}})
        wait_idle(lambda p: call(conns[0], "GET", p)[1], 60)

        submitted: list[str] = []
        errors: list[str] = []
        lock = threading.Lock()
        counter = iter(range(jobs))
        barrier = threading.Barrier(clients + 1)

        def work(conn: http.client.HTTPConnection) -> None:
            barrier.wait()
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                try:
                    status, body = call(conn, "POST", "/v1/jobs", {"service": "echo", "input": {"n": i}})
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        errors.append(repr(exc))
                    continue
                with lock:
                    (submitted.append(body["jobId"]) if status == 202 else errors.append(str(status)))

        threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in conns]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.time()
        for t in threads:
            t.join()
        submit_s = time.time() - t0
        wait_idle(lambda p: call(conns[0], "GET", p)[1], 600)
        done_wall = time.time()
        wanted = set(submitted)
        found: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            page = call(conns[0], "GET", "/v1/jobs?limit=100" + (f"&cursor={cursor}" if cursor else ""))[1]
            for j in page["jobs"]:
                if j["jobId"] in wanted:
                    found[j["jobId"]] = j
            cursor = page["nextCursor"]
            if not cursor or len(found) == len(wanted):
                break
        for c in conns:
            c.close()

    def ts(text: str) -> float:
        from datetime import datetime

        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    ok = [j for j in found.values() if j["status"] == "succeeded"]
    latency = [ts(j["completedAt"]) - ts(j["createdAt"]) for j in ok]
    run_time = [ts(j["completedAt"]) - ts(j["startedAt"]) for j in ok]
    last = max((ts(j["completedAt"]) for j in ok), default=done_wall)
    return {
        "throughput_jobs_per_s": round(len(ok) / (last - t0), 2) if ok else 0.0,
        "latency_p50_s": round(percentile(latency, 50), 3),
        "latency_p99_s": round(percentile(latency, 99), 3),
        "jobs": jobs, "clients": clients, "succeeded": len(ok), "errors": len(errors),
        "submit_rate_per_s": round(len(submitted) / submit_s, 1),
        "run_time_p50_ms": round(percentile(run_time, 50) * 1000, 1),
        "seconds_first_submit_to_last_end": round(last - t0, 2),
    }


def wait_idle(get: Callable[[str], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(get(f"/v1/jobs?limit=1&status={s}")["jobs"] for s in ("queued", "running")):
            return
        time.sleep(0.1)
    raise RuntimeError("the runner did not finish its jobs")


# -- memory of a service per byte of input ----------------------------------------------------

class _Ctx:
    """The handler context, in process: no AWS, nothing kept but the variables."""

    job_id = "01BENCHJOB"

    def __init__(self, content: bytes, content_type: str, variables: dict[str, str]):
        self.content, self.content_type, self.variables = content, content_type, variables
        self.canceled = False

    def log(self, message: str, level: int = 1) -> None:
        pass

    def progress(self, percent: float, message: str | None = None) -> None:
        pass

    def set_variable(self, name: str, value: object) -> None:
        pass

    def remaining_seconds(self) -> float:
        return 300.0


def dataload_peak(content: bytes, content_type: str, **variables: str) -> int:
    """Peak bytes the dataload handler allocates (tracemalloc), its streamed result read a
    chunk at a time as the worker's upload reads it; after one untraced warm-up run."""
    import tracemalloc

    from chalicelib.services import dataload
    from chalicelib.services.base import Result

    def once() -> None:
        out = dataload.run(dataload.DataloadInput(), _Ctx(content, content_type, variables))
        if isinstance(out, Result) and not isinstance(out.body, bytes | bytearray):
            for _ in out.body:
                pass

    once()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        once()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bench_memory() -> dict[str, Any]:
    """The red team's document (1,000 header fields, 5,000 one-field rows, 15 KB) and a
    plain 1 MB CSV: the dataload handler's peak memory per MB of input (target <= 10)."""
    attack = (",".join(f"f{i}" for i in range(1000)) + "\n" + "1\n" * 5000).encode()
    plain = ("id,name,score\n" + "".join(f"{i},name{i},{i % 97}\n" for i in range(60_000))
             ).encode()
    docs = {"wide_header_attack": (attack, "text/csv"), "plain_csv": (plain, "text/csv"),
            "json_array": (json.dumps([{"id": i, "name": f"n{i}"} for i in range(30_000)]
                                      ).encode(), "application/json")}
    out: dict[str, Any] = {}
    for name, (doc, kind) in docs.items():
        peak = dataload_peak(doc, kind)
        out[name] = {"input_bytes": len(doc), "peak_bytes": peak,
                     "peak_memory_per_input_mb": round(peak / len(doc), 2)}
    out["dataload_peak_memory_per_input_mb"] = max(
        v["peak_memory_per_input_mb"] for v in out.values())
    return out


# -- report -----------------------------------------------------------------------------------

def table(title: str, rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [title, "-" * len(title)]
    for n, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(r: dict[str, Any]) -> str:
    req, cold, sub, lst, thr, mem = (r["detail"][k] for k in (
        "requests", "cold_start", "submit", "listing", "throughput", "memory"))
    out = []
    rows = [("phase", "operation", "requests/job")]
    for phase, ops in req["by_phase"].items():
        for op, n in ops.items():
            rows.append((phase, op, f"{n:g}"))
    rows.append(("total (ours)", "", f"{req['aws_requests_per_job']:g}  (target <= 8)"))
    for op, n in req["event_source_mapping_per_job"].items():
        rows.append(("event source mapping", op, f"{n:g}"))
    out.append(table(f"1. AWS requests per job lifecycle (steady state, mean of "
                     f"{req['jobs_measured']} jobs after {req['warmup_jobs']} warm-up jobs)", rows))
    first = req["first_job_cold_caches"]
    out.append(f"   the very first job (cold caches) made {first['requests']} requests: "
               + ", ".join(f"{op} x{n}" for op, n in sorted(first["by_operation"].items()))
               + f"\n   cache refreshes: {req['cache_refreshes']}")
    ru = req["dynamodb_request_units_per_job"]
    out.append(f"   DynamoDB request units per job: {ru['write']:g} WRU (target <= 8), "
               f"{ru['read']:g} RRU; write units by phase: "
               + ", ".join(f"{k} {v:g}" for k, v in ru["write_by_phase"].items())
               + "\n   (counted from the items before and after each write, per index projection)")
    ro = req["usd_per_million_jobs_requests_only"]
    out.append("   USD per million jobs, requests only (target <= 18): "
               + ", ".join(f"{k} {v:.2f}" for k, v in ro.items()))
    cost = req["cost_usd_per_million_jobs"]
    rows = [("service", "USD per million jobs")]
    rows += [(k, f"{v:.4f}") for k, v in cost.items()]
    rows += [(f"not in total: {k}", f"{v:.4f}")
             for k, v in req["cost_usd_per_million_jobs_not_included"].items()]
    out.append(table("   cost at AWS list prices, us-east-1, no free tier", rows))
    p = {k: v * (1e3 if k.startswith("s3") else 1e6) for k, v in PRICES.items()}
    out.append(
        f"   prices: DynamoDB on-demand ${p['dynamodb_write_request_unit']:.3f}/M WRU, "
        f"${p['dynamodb_read_request_unit']:.3f}/M RRU; SQS ${p['sqs_request']:.2f}/M requests; "
        f"S3 PUT ${p['s3_put_class_request']:.3f}/1000, GET ${p['s3_get_class_request']:.4f}/1000;\n"
        f"   Lambda ${p['lambda_request']:.2f}/M requests + ${PRICES['lambda_gb_second']:.10f}/GB-s "
        f"(memory from .chalice/config.json {req['lambda']['memory_mb']}, durations measured "
        "in process on moto);\n"
        f"   API Gateway REST ${p['api_gateway_rest_request']:.2f}/M. Storage (DynamoDB "
        "$0.25/GB-month, S3 $0.023/GB-month) and data transfer not included.")
    out.append(table("2. Cold start (import in a fresh interpreter, median of "
                     f"{cold['runs']})", [
                         ("import", "ms"),
                         ("import app", f"{cold['import_app_ms']:.1f}"),
                         ("import chalice, boto3, pydantic",
                          f"{cold['import_chalice_boto3_pydantic_ms']:.1f}"),
                         ("ratio (target <= 1.2)", f"{cold['cold_import_ratio']:.3f}"),
                         ("ratio in CPU time", f"{cold['cold_import_cpu_ratio']:.3f}")]))
    out.append(table(f"3. Submit cost in process on moto (median of {sub['runs']}, warm)", [
        ("route", "median ms", "p90 ms"),
        ("POST /v1/jobs", f"{sub['submit_median_ms']:.2f}", f"{sub['submit_p90_ms']:.2f}"),
        ("bare route: PutItem + SendMessage", f"{sub['bare_median_ms']:.2f}", f"{sub['bare_p90_ms']:.2f}"),
        ("ratio (target <= 1.5)", f"{sub['submit_overhead_ratio']:.3f}", "")]))
    rows = [("jobs stored", "items returned", "ScannedCount", "queries", "RRU", "median ms (moto)")]
    for size, v in lst["by_table_size"].items():
        rows.append((size, str(v["items_returned"]), str(v["scanned_count"]), str(v["queries"]),
                     f"{v['read_request_units']:g}", f"{v['median_ms']:.1f}"))
    out.append(table("4. Listing: one page of 20 (GET /v1/jobs?limit=20)", rows))
    out.append(f"   items read: {lst['list_items_read_1k']} at 1k, {lst['list_items_read_10k']} at 10k. "
               + lst["note"])
    out.append(table(f"5. Local runner throughput ({thr['jobs']} echo jobs, {thr['clients']} "
                     "clients, one process on moto)", [
                         ("figure", "value"),
                         ("jobs/s (first submit to last end)", f"{thr['throughput_jobs_per_s']:.2f}"),
                         ("latency p50, submit -> succeeded (s)", f"{thr['latency_p50_s']:.3f}"),
                         ("latency p99 (s)", f"{thr['latency_p99_s']:.3f}"),
                         ("submits/s accepted", f"{thr['submit_rate_per_s']:.1f}"),
                         ("worker start -> end p50 (ms)", f"{thr['run_time_p50_ms']:.1f}"),
                         ("succeeded / errors", f"{thr['succeeded']} / {thr['errors']}")]))
    rows = [("document", "input bytes", "peak bytes", "MB per MB of input")]
    for name, v in mem.items():
        if isinstance(v, dict):
            rows.append((name, str(v["input_bytes"]), str(v["peak_bytes"]),
                         f"{v['peak_memory_per_input_mb']:.2f}"))
    rows.append(("worst (target <= 10)", "", "", f"{mem['dataload_peak_memory_per_input_mb']:.2f}"))
    out.append(table("6. dataload peak memory per MB of input (tracemalloc, handler only)", rows))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs for the throughput run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--lifecycles", type=int, default=20, help="jobs counted for requests/job")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    import logging

    for noisy in ("werkzeug", "botocore", "urllib3", "moto", "jobgate"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    started = time.monotonic()
    detail: dict[str, Any] = {}

    def step(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        t = time.monotonic()
        print(f"... {name}", file=sys.stderr, flush=True)
        detail[name] = fn()
        detail[name]["bench_seconds"] = round(time.monotonic() - t, 1)

    step("cold_start", bench_cold_import)
    step("memory", bench_memory)
    with embedded() as e:
        logging.getLogger("jobgate").setLevel(logging.ERROR)
        step("requests", lambda: bench_requests(e, args.lifecycles))
        step("submit", lambda: bench_submit(e))
        step("listing", lambda: bench_listing(e))
    step("throughput", lambda: bench_throughput(args.jobs, args.clients))

    results = {
        "aws_requests_per_job": detail["requests"]["aws_requests_per_job"],
        "dynamodb_write_units_per_job":
            detail["requests"]["dynamodb_request_units_per_job"]["write"],
        "usd_per_million_jobs": detail["requests"]["usd_per_million_jobs_requests_only"]["total"],
        "cold_import_ratio": detail["cold_start"]["cold_import_ratio"],
        "submit_overhead_ratio": detail["submit"]["submit_overhead_ratio"],
        "list_items_read_1k": detail["listing"]["list_items_read_1k"],
        "list_items_read_10k": detail["listing"]["list_items_read_10k"],
        "throughput_jobs_per_s": detail["throughput"]["throughput_jobs_per_s"],
        "latency_p50_s": detail["throughput"]["latency_p50_s"],
        "latency_p99_s": detail["throughput"]["latency_p99_s"],
        "dataload_peak_memory_per_input_mb":
            detail["memory"]["dataload_peak_memory_per_input_mb"],
        "detail": detail,
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                    "platform": sys.platform},
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    print(report(results))
    print(f"\nbench took {results['bench_seconds']} s; results in {args.out}")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
