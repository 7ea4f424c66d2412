"""`make run`: the whole service in one process — an embedded moto server (unless
AWS_ENDPOINT_URL names another endpoint), the Chalice routes on 127.0.0.1, and one poller
per SQS handler feeding it as Lambda would."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT_DIR = Path(__file__).resolve().parent.parent
log = logging.getLogger("jobgate.local")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_tenants(spec: str) -> list[tuple[str, str, str]]:
    """`name:apikey:whsec_secret,...` → [(name, key, secret)]; names are slugs."""
    from chalicelib.tenants import TENANT_NAME, TENANT_NAME_RULE

    out = []
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        parts = entry.split(":")
        if len(parts) != 3 or not all(parts):
            raise SystemExit(f"JOBGATE_TENANTS: expected name:apikey:whsec_secret, got {entry!r}")
        if not TENANT_NAME.fullmatch(parts[0]):
            raise SystemExit(f"JOBGATE_TENANTS: {TENANT_NAME_RULE}, got {parts[0]!r}")
        out.append((parts[0], parts[1], parts[2]))
    return out


def own_endpoints(configured: str, api_port: int, aws_endpoint: str) -> str:
    """The callback targets a tenant must never reach, whatever
    JOBGATE_ALLOW_PRIVATE_CALLBACKS says: this runner's API and its AWS endpoint (a callback
    to the embedded moto's /moto-api/reset would wipe every tenant's state)."""
    parts = urlsplit(aws_endpoint)
    aws_port = parts.port or (443 if parts.scheme == "https" else 80)
    aws_host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    own = [f"127.0.0.1:{api_port}", f"{aws_host}:{aws_port}"]
    return ",".join(filter(None, [configured.strip(" ,"), *own]))


def _die_with_parent() -> None:
    """Linux: a local worker gets SIGTERM when the runner dies without stopping it (killed),
    so no worker outlives its runner and claims from a later one on the same port."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalService:
    """Starts and stops everything; used by `make run` and by the end-to-end tests."""

    def __init__(self, env: dict[str, str] | None = None):
        self.env = os.environ if env is None else env
        self.stop_event = threading.Event()
        self.moto: Any = None
        self.server: Any = None
        self.threads: list[threading.Thread] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def start(self) -> dict[str, str]:
        env = self.env
        port = int(env.get("JOBGATE_PORT") or 8000)
        region = env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION") or "us-east-1")
        env.setdefault("JOBGATE_ALLOW_PRIVATE_CALLBACKS", "true")
        env.setdefault("JOBGATE_STAGE", "local")
        # Before chalicelib.store is imported (it reads it once): moto evaluates every index
        # query against the whole table, so fewer listing shards keep local listings quick.
        env.setdefault("JOBGATE_LIST_SHARDS", "2")
        env.setdefault("JOBGATE_PUBLIC_URL", f"http://127.0.0.1:{port}")  # links: never Host
        endpoint = env.get("AWS_ENDPOINT_URL")
        if not endpoint:
            from moto.server import ThreadedMotoServer

            from .motolock import install

            install()

            mport = free_port()
            self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=mport, verbose=False)
            self.moto.start()
            endpoint = env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{mport}"
            # The embedded AWS never sees real credentials.
            env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = "testing", "testing"
            env.pop("AWS_SESSION_TOKEN", None)
            env.pop("AWS_PROFILE", None)

        env["JOBGATE_FORBIDDEN_CALLBACK_TARGETS"] = own_endpoints(
            env.get("JOBGATE_FORBIDDEN_CALLBACK_TARGETS", ""), port, endpoint)

        from chalicelib import services
        from chalicelib.connections import create_clients
        from chalicelib.tenants import new_api_key, new_webhook_secret
        from chalicelib.workerkeys import new_worker_key

        from .provision import local_runtime

        env.setdefault("JOBGATE_LINK_SECRET", secrets.token_hex(32))
        api_key = env.get("JOBGATE_API_KEY") or new_api_key()
        secret = env.get("JOBGATE_WEBHOOK_SECRET") or new_webhook_secret()
        tenants = [("dev", api_key, secret), *parse_tenants(env.get("JOBGATE_TENANTS", ""))]
        clients = create_clients(region, endpoint)
        rt, _ = local_runtime(clients, f"jobgate-{env['JOBGATE_STAGE']}", region, tenants, env)
        worker_key = env.get("JOBGATE_WORKER_KEY") or new_worker_key()
        worker_services = [s.name for s in services.all_services() if s.runs_on == "worker"]
        rt.workers.keys.add(worker_key, worker_services, label="local")

        from chalice.cli.factory import CLIFactory
        from chalice.local import ThreadedHTTPServer, create_local_server

        from .gateway import install_greedy_paths

        install_greedy_paths()  # unknown paths reach the app's /{proxy+} route, as on AWS

        # socketserver listens with a backlog of 5: a burst of new connections (32 clients)
        # overflows it and the kernel resets some of them.
        ThreadedHTTPServer.request_queue_size = 128

        factory = CLIFactory(str(PROJECT_DIR))
        app = factory.load_chalice_app()
        config = factory.create_config_obj(chalice_stage_name="dev")
        self.server = create_local_server(app, config, "127.0.0.1", port)
        web = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)
        web.start()
        self.threads.append(web)

        from .pollers import Poller

        queue_urls = {u.rstrip("/").rsplit("/", 1)[-1]: u for u in (
            env["JOBGATE_JOBS_QUEUE_URL"], env["JOBGATE_JOBS_DLQ_URL"],
            env["JOBGATE_CALLBACKS_QUEUE_URL"], env["JOBGATE_CALLBACKS_DLQ_URL"])}
        for source in app.event_sources:
            queue = getattr(source, "queue", None)
            if queue not in queue_urls:
                continue
            workers = 4 if queue.endswith("-jobs") or queue.endswith("-callbacks") else 1
            batch_size: int = getattr(source, "batch_size", 10)  # an SQSEventConfig's
            for i in range(workers):
                p = Poller(clients.sqs, queue_urls[queue], app.handler_map[source.name],
                           f"{source.name}-{i}", batch_size, region, self.stop_event)
                p.start()
                self.threads.append(p)
        url = f"http://127.0.0.1:{port}"
        count = int(env.get("JOBGATE_LOCAL_WORKERS") or 1)
        started = self.start_workers(url, worker_key, count) if count > 0 else 0
        return {"url": url, "api_key": api_key, "webhook_secret": secret,
                "aws_endpoint": endpoint, "worker_key": worker_key, "workers": str(started)}

    def start_workers(self, url: str, worker_key: str, count: int) -> int:
        """`jobgate worker` processes for the built-in worker service (docs/api.md): only
        when this checkout's SDK has the worker command."""
        command = [sys.executable, "-m", "jobgate", "worker"]
        child_env = {**self.env, "JOBGATE_URL": url, "JOBGATE_WORKER_KEY": worker_key}
        child_env.pop("AWS_ENDPOINT_URL", None)  # a worker needs no AWS access at all
        try:
            probe = subprocess.run([*command, "--help"], cwd=PROJECT_DIR, env=child_env,
                                   capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return 0
        if probe.returncode != 0:
            log.warning("no `jobgate worker` command here: local workers not started")
            return 0
        for _ in range(count):
            self.workers.append(subprocess.Popen(
                [*command, "--service", "report", "--handler", "examples.worker.report:report"],
                cwd=PROJECT_DIR, env=child_env,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None))
        return count

    def stop_workers(self, grace: float = 10.0) -> None:
        """SIGTERM (a worker finishes or fails its jobs), then kill what is left."""
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.workers:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.workers.clear()

    def stop(self) -> None:
        self.stop_workers()
        self.stop_event.set()
        if self.server is not None:
            self.server.shutdown()
        for t in self.threads:
            if t is not threading.current_thread():
                t.join(timeout=5)
        if self.moto is not None:
            self.moto.stop()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("werkzeug", "botocore", "urllib3", "moto"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.path.insert(0, str(PROJECT_DIR))
    # The handlers come first: the API answers before start() returns (it still starts the
    # worker processes), and a SIGTERM in that window must stop us cleanly, not kill us.
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    service = LocalService()
    info = service.start()
    print(
        "\nJobgate is running on the embedded AWS\n"
        f"  URL             {info['url']}\n"
        f"  API key         {info['api_key']}   (tenant: dev)\n"
        f"  Webhook secret  {info['webhook_secret']}\n"
        f"  Worker key      {info['worker_key']}   ({info['workers']} local worker process(es))\n"
        f"  AWS endpoint    {info['aws_endpoint']}\n\n"
        f"  curl {info['url']}/v1/health\n"
        f"  curl -H 'Authorization: Bearer {info['api_key']}' {info['url']}/v1/services\n"
        "Ctrl-C stops it.\n",
        flush=True,
    )
    stopped.wait()
    print("stopping...", flush=True)
    service.stop()
    return 0
