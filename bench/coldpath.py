"""`python -m bench.coldpath [N] [DIR ...]`: a cold start as Lambda sees it, `import app` and
then the first request of a route, in fresh interpreters, CPU time (median of N, default 7).

`bench.run` measures the import alone; this shows that making the import lighter did not
just move the work into the first request. Each child imports the app of a project
directory (default: this one; give more, e.g. an export of an older commit, to compare
them, alternated) and hands one API Gateway proxy event to `app.app`, as Lambda does,
against a moto server the parent starts and provisions. The first request includes
building the runtime (the boto3 clients), the same for every route. Prints a table;
asserts nothing."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
KEY, SECRET = "coldpath-key-0123456789", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

CHILD = """
import json, time
c0 = time.process_time()
import app
c1 = time.process_time()
m, path, body = {route!r}
path, _, query = path.partition("?")
resource = "/v1/jobs/{{jobId}}" if path.count("/") == 3 else path
params = {{"jobId": path.rsplit("/", 1)[-1]}} if "{{jobId}}" in resource else None
qs = dict(kv.split("=") for kv in query.split("&")) if query else None
headers = {{"Authorization": "Bearer {key}", "Content-Type": "application/json",
           "Host": "jobs.example.com"}}
event = {{"resource": resource, "path": path, "httpMethod": m, "headers": headers,
         "multiValueHeaders": {{k: [v] for k, v in headers.items()}},
         "queryStringParameters": qs,
         "multiValueQueryStringParameters": {{k: [v] for k, v in qs.items()}} if qs else None,
         "pathParameters": params, "stageVariables": None, "body": body,
         "isBase64Encoded": False,
         "requestContext": {{"resourcePath": resource, "httpMethod": m, "path": "/api" + path,
                            "stage": "api", "domainName": "jobs.example.com",
                            "identity": {{"sourceIp": "203.0.113.1"}}}}}}
first = app.app(event, None)
c2 = time.process_time()
assert first["statusCode"] < 300, first
app.app(event, None)
c3 = time.process_time()
print(json.dumps([c1 - c0, c2 - c1, c3 - c2]))
"""


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 7
    dirs = [str(Path(d).resolve()) for d in argv[1:]] or [str(PROJECT)]
    sys.path.insert(0, str(PROJECT))
    from bench.run import clean_env

    os.environ.update(clean_env())
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's request lines
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
        from chalicelib.connections import create_clients
        from localrunner.provision import local_runtime

        env = {"JOBGATE_LINK_SECRET": "coldpath-link-secret-0123456789abcdef"}
        rt, _ = local_runtime(create_clients("us-east-1"), "jobgate-coldpath", "us-east-1",
                              [("acme", KEY, SECRET)], env)
        tenant = rt.tenants.authenticate(f"Bearer {KEY}")
        job = rt.api.submit(tenant, rt.api.parse_request({"service": "echo", "input": {}}),
                            "https://jobs.example.com").job
        routes: dict[str, tuple[str, str, str | None]] = {
            "GET /v1/jobs/{id}": ("GET", f"/v1/jobs/{job.job_id}", None),
            "POST /v1/jobs": ("POST", "/v1/jobs", json.dumps({"service": "echo", "input": {}})),
            "GET /v1/jobs": ("GET", "/v1/jobs?limit=5", None),
            "GET /v1/health": ("GET", "/v1/health", None),
        }
        child_env = {**os.environ, **env}
        child_env.pop("PYTHONDONTWRITEBYTECODE", None)
        results: dict[tuple[str, str], list[list[float]]] = {}
        for i in range(runs + 1):  # the first round only warms caches and __pycache__
            for name, route in routes.items():
                for d in dirs:
                    out = subprocess.run(
                        [sys.executable, "-c", CHILD.format(route=route, key=KEY)], cwd=d,
                        env=child_env, capture_output=True, text=True, timeout=300)
                    if out.returncode:
                        print(out.stderr[-3000:], file=sys.stderr)
                        return 1
                    if i:
                        results.setdefault((name, d), []).append(
                            json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"cold path, CPU ms, median of {runs} (import app | first request | total | "
              "a second request)")
        for name in routes:
            for d in dirs:
                med: list[Any] = [statistics.median(r[k] for r in results[(name, d)]) * 1000
                                  for k in range(3)]
                print(f"{name:18} {med[0]:7.1f} | {med[1]:7.1f} | {med[0] + med[1]:7.1f} | "
                      f"{med[2]:6.1f}   {d}")
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
