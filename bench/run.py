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
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.embedded import (
    BENCH_KEY,
    LIST_KEY,
    PROJECT,
    Embedded,
    clean_env,
    embedded,
    lambda_memory_mb,
    percentile,
    pump,
    quiet,
)
from bench.metering import PRICES, S3_FREE, S3_PUT_CLASS
from bench.report import report

RESULTS = Path(__file__).resolve().parent / "results.json"


# -- 1. AWS requests per job ----------------------------------------------------------------

BENCH_SERVICE = "bench-progress"


def progress_service(e: Embedded) -> None:
    """The bench's job: echo's work with two progress reports a second apart (the worker's
    throttle writes at most one a second: its injected clock is moved on between them, as
    the worker tests do), so the lifecycle has the issue's two progress writes."""
    from chalicelib import services
    from chalicelib.services.base import Service
    from chalicelib.services.echo import EchoInput
    from chalicelib.worker import PROGRESS_INTERVAL

    offset = [0.0]
    e.rt.worker.ticks = lambda: time.monotonic() + offset[0]

    def run(data: Any, ctx: Any) -> Any:
        ctx.log("echoing input", level=2)
        ctx.progress(50.0, "halfway")
        offset[0] += PROGRESS_INTERVAL
        ctx.progress(90.0, "almost")
        offset[0] += PROGRESS_INTERVAL
        return data.model_dump()

    if services.get(BENCH_SERVICE) is None:
        services.register(Service(name=BENCH_SERVICE, handler=run, input_model=EchoInput,
                                  timeout_seconds=30, description="echo, reporting progress twice"))


def bench_requests(e: Embedded, jobs: int, warmup: int = 3) -> dict[str, Any]:
    from chalice.test import Client

    from localrunner.receiver import Receiver

    progress_service(e)

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
                {"service": BENCH_SERVICE, "input": {"n": i, "text": "x" * 200},
                 "callbackUrl": rx.url}))
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
    # The quota's reads at submit: none but the tenant cache's GetItems (Query/BatchGetItem
    # would be a count of the index or of the counter shards).
    quota_reads = sum(n for (_, phase, service, op), n in ours.items()
                      if phase == "submit" and op in ("Query", "BatchGetItem", "Scan"))
    return {
        "aws_requests_per_job": round(total, 3),
        "tenant_quota_reads_per_submit": round(quota_reads, 3),
        "by_phase": dict(by_phase),
        "event_source_mapping_per_job": {k: round(v, 3) for k, v in sorted(esm_ops.items())},
        "first_job_cold_caches": {"requests": sum(cold.values()), "by_operation": dict(cold)},
        "cache_refreshes": "per container, amortized over the requests it serves: API key and "
                           "tenant (GetItem x2, 5 s), callback tenant (GetItem, 5 s); the tenant quota "
                           "and the queue's bound read nothing (a conditional counter each)",
        "dynamodb_request_units_per_job": {
            "write": round(wru, 2), "read": round(rru, 2),
            "write_by_phase": {k: round(v / jobs, 2) for k, v in meter.wru.items()},
            "write_by_phase_and_item": {f"{phase}: {what}": round(n / jobs, 2)
                                        for (phase, what), n in sorted(meter.parts.items())},
            "write_by_item": {what: round(sum(n for (_, w), n in meter.parts.items()
                                              if w == what) / jobs, 2)
                              for what in sorted({w for _, w in meter.parts})},
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
    from localrunner.bulk import write_jobs

    jobs = []
    for i in range(n):
        created = start + i * 0.001
        job_id = new_job_id(created)
        jobs.append(Job(
            tenant=tenant, job_id=job_id, service="echo", status="succeeded",
            created_at=created, expires_at=created + 30 * 86400, input={"n": i},
            attempts=1, started_at=created + 0.05, completed_at=created + 0.1,
            progress_percent=100.0, result_key=f"results/{tenant}/{job_id}/t",
            result_type="application/json", result_size=12, valid_until=created + 86400,
            log_inline="attempt 1 of 3 started\nsucceeded\n", log_size=40,
            base_url="https://jobs.example.com"))
    write_jobs(e.rt.clients.dynamodb, e.rt.settings.table_name, jobs)


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
    from localrunner.live import live_runner

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
        "dynamodb_write_units_per_job_by_item":
            detail["requests"]["dynamodb_request_units_per_job"]["write_by_item"],
        "tenant_quota_write_units_per_job":
            detail["requests"]["dynamodb_request_units_per_job"]["write_by_item"].get(
                "tenant_quota_counter", 0),
        "tenant_quota_reads_per_submit": detail["requests"]["tenant_quota_reads_per_submit"],
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
