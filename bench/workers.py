"""`python -m bench.workers`: what a worker job costs the API.

1. AWS requests per claimed job (embedded moto, in process): claim (Query on the claim index
   + conditional UpdateItem + the watchdog's SendMessage), one heartbeat, complete (inline
   result), counted from botocore's `before-call` events by operation.
2. An idle long poll (no job comes): AWS requests made and the time the API function is held
   (= Lambda time billed) for `--wait` seconds.
3. An idle short claim (`waitSeconds: 0`, what an idle `jobgate worker` sends once a minute):
   the API function's time for it, measured in process (the handler alone, on moto) and on
   the real local runner over HTTP (`python -m localrunner`: every AWS call a round trip to
   the moto server, the request a round trip to the chalice server), and what one idle
   worker's claims cost a month at us-east-1 list prices with the prod API function's memory
   (.chalice/config.json).

Benchmarks measure; they assert nothing (tests/test_workers.py does that)."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import Counter
from typing import Any

LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1e6
API_GATEWAY_REQUEST = 3.50 / 1e6  # REST API, first 333 million a month
IDLE_CLAIMS_A_MONTH = 43_200  # one short claim a minute (client/jobgate/backoff.py), 30 days
WORKER_KEY = "jgw_bench-worker-key-0123456789"
SHORT_CLAIMS = 200


def api_memory_gb(stage: str = "prod") -> float:
    from pathlib import Path

    config = json.loads((Path(__file__).resolve().parent.parent / ".chalice" / "config.json")
                        .read_text())["stages"][stage]
    mb = config["lambda_functions"]["api_handler"].get("lambda_memory_size") \
        or config["lambda_memory_size"]
    return int(mb) / 1024


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {f"p{p}": round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000, 1)
            for p in (50, 90, 99)}


def live_short_claims(count: int) -> list[float]:
    """Seconds per empty `waitSeconds: 0` claim on the real local runner, over one
    keep-alive connection (so each includes the HTTP round trip: an upper bound)."""
    import http.client
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from localrunner.live import live_runner

    with live_runner(JOBGATE_LOCAL_WORKERS="0", JOBGATE_WORKER_KEY=WORKER_KEY) as runner:
        conn = http.client.HTTPConnection("127.0.0.1", int(runner.url.rsplit(":", 1)[1]),
                                          timeout=30)
        body = json.dumps({"services": ["report"], "waitSeconds": 0})
        headers = {"Authorization": f"Bearer {WORKER_KEY}", "Content-Type": "application/json"}
        out = []
        for i in range(count + 20):  # the first 20 warm the runner (a warm container's)
            started = time.perf_counter()
            conn.request("POST", "/v1/worker/claim", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 204, resp.status
            if i >= 20:
                out.append(time.perf_counter() - started)
        conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait", type=float, default=5.0, help="idle long poll, seconds")
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", JOBGATE_STAGE="bench")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from chalice.test import Client
    from moto import mock_aws

    import app as app_module
    from chalicelib.connections import create_clients
    from localrunner.provision import local_runtime

    with mock_aws():
        tenant = ("bench", "bench-key-0123456789abcdef", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        rt, _ = local_runtime(create_clients("us-east-1"), "jobgate-bench", "us-east-1", [tenant])
        rt.workers.keys.add(WORKER_KEY, ["report"])
        calls: Counter[str] = Counter()
        for client in (rt.clients.dynamodb, rt.clients.sqs, rt.clients.s3):
            client.meta.events.register(
                "before-call", lambda model, **_: calls.update([model.name]))
        with Client(app_module.app) as c:
            def post(path: str, body: Any, key: str) -> Any:
                return c.http.post(path, body=json.dumps(body), headers={
                    "Authorization": f"Bearer {key}", "Content-Type": "application/json"})

            resp = post("/v1/jobs", {"service": "report"}, "bench-key-0123456789abcdef")
            job_id = json.loads(resp.body)["jobId"]
            rt.workers.keys.authenticate(f"Bearer {WORKER_KEY}")  # a warm container's cache
            calls.clear()
            claim = json.loads(post("/v1/worker/claim", {"services": ["report"]}, WORKER_KEY).body)
            claimed = dict(calls)
            post(f"/v1/worker/jobs/{job_id}/heartbeat",
                 {"leaseToken": claim["leaseToken"], "progress": {"percent": 50}}, WORKER_KEY)
            beat = dict(calls - Counter(claimed))
            before = Counter(calls)
            post(f"/v1/worker/jobs/{job_id}/complete",
                 {"leaseToken": claim["leaseToken"], "result": {"ok": True}}, WORKER_KEY)
            done = dict(calls - before)
            calls.clear()
            started = time.monotonic()
            idle = post("/v1/worker/claim", {"services": ["report"], "waitSeconds": args.wait},
                        WORKER_KEY)
            held = time.monotonic() - started
            assert idle.status_code == 204
            idle_calls = dict(calls)
            short: list[float] = []
            for _ in range(SHORT_CLAIMS):
                started = time.perf_counter()
                assert post("/v1/worker/claim", {"services": ["report"], "waitSeconds": 0},
                            WORKER_KEY).status_code == 204
                short.append(time.perf_counter() - started)

    live = live_short_claims(SHORT_CLAIMS)
    gb = api_memory_gb()
    billed_ms = math.ceil(sorted(live)[len(live) // 2] * 1000)  # Lambda bills whole ms
    month = {
        "api_gateway": IDLE_CLAIMS_A_MONTH * API_GATEWAY_REQUEST,
        "lambda_requests": IDLE_CLAIMS_A_MONTH * LAMBDA_REQUEST,
        "lambda_duration": IDLE_CLAIMS_A_MONTH * billed_ms / 1000 * gb * LAMBDA_GB_SECOND,
    }
    out = {
        "claim": claimed, "heartbeat": beat, "complete": done,
        "requests_per_claimed_job": sum(claimed.values()) + sum(done.values()),
        "idle_long_poll_seconds": round(held, 2), "idle_long_poll_requests": idle_calls,
        "idle_long_poll_queries_per_second": round(sum(idle_calls.values()) / held, 2),
        "api_memory_gb": gb,
        "lambda_usd_per_idle_20s_long_poll": round(20 * gb * LAMBDA_GB_SECOND, 7),
        "short_claim_ms_in_process": percentiles(short),
        "short_claim_ms_local_runner_http": percentiles(live),
        "short_claim_billed_ms": billed_ms,
        "idle_worker_usd_a_month": {k: round(v, 4) for k, v in month.items()}
        | {"total": round(sum(month.values()), 3)},
        "long_polling_nonstop_usd_a_month": round(
            129_600 * (API_GATEWAY_REQUEST + LAMBDA_REQUEST + 20 * gb * LAMBDA_GB_SECOND), 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
