"""`python -m bench.workers`: what a worker job costs the API, on the embedded AWS (moto).

1. AWS requests per claimed job: claim (Query on the claim index + conditional UpdateItem
   + the watchdog's SendMessage), one heartbeat, complete (inline result), counted from
   botocore's `before-call` events by operation.
2. An idle claim (no job comes): AWS requests made and wall time the API function is
   held (= Lambda time billed), for a long poll of `--wait` seconds, priced at the API
   function's memory (.chalice/config.json: 512 MB).

Benchmarks measure; they assert nothing (tests/test_workers.py does that)."""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from typing import Any

LAMBDA_GB_SECOND = 0.0000166667
API_MEMORY_GB = 0.5
WORKER_KEY = "jgw_bench-worker-key-0123456789"


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

    per_20s = 20 * API_MEMORY_GB * LAMBDA_GB_SECOND
    out = {
        "claim": claimed, "heartbeat": beat, "complete": done,
        "requests_per_claimed_job": sum(claimed.values()) + sum(done.values()),
        "idle_claim_seconds": round(held, 2), "idle_claim_requests": idle_calls,
        "idle_claim_queries_per_second": round(sum(idle_calls.values()) / held, 2),
        "lambda_usd_per_idle_20s_claim": round(per_20s, 7),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
