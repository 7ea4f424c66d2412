"""`make run`: the whole service in one process — an embedded moto server (unless
AWS_ENDPOINT_URL names another endpoint), the Chalice routes on 127.0.0.1, and one poller
per SQS handler feeding it as Lambda would."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
log = logging.getLogger("jobgate.local")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_tenants(spec: str) -> list[tuple[str, str, str]]:
    """`name:apikey:whsec_secret,...` → [(name, key, secret)]."""
    out = []
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        parts = entry.split(":")
        if len(parts) != 3 or not all(parts):
            raise SystemExit(f"JOBGATE_TENANTS: expected name:apikey:whsec_secret, got {entry!r}")
        out.append((parts[0], parts[1], parts[2]))
    return out


class LocalService:
    """Starts and stops everything; used by `make run` and by the end-to-end tests."""

    def __init__(self, env: dict[str, str] | None = None):
        self.env = os.environ if env is None else env
        self.stop_event = threading.Event()
        self.moto: Any = None
        self.server: Any = None
        self.threads: list[threading.Thread] = []

    def start(self) -> dict[str, str]:
        env = self.env
        port = int(env.get("JOBGATE_PORT") or 8000)
        region = env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION") or "us-east-1")
        env.setdefault("JOBGATE_ALLOW_PRIVATE_CALLBACKS", "true")
        env.setdefault("JOBGATE_STAGE", "local")
        endpoint = env.get("AWS_ENDPOINT_URL")
        if not endpoint:
            from moto.server import ThreadedMotoServer

            mport = free_port()
            self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=mport, verbose=False)
            self.moto.start()
            endpoint = env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{mport}"
            # The embedded AWS never sees real credentials.
            env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = "testing", "testing"
            env.pop("AWS_SESSION_TOKEN", None)
            env.pop("AWS_PROFILE", None)

        from chalicelib.connections import create_clients
        from chalicelib.tenants import new_api_key, new_webhook_secret

        from .provision import local_runtime

        env.setdefault("JOBGATE_CURSOR_SECRET", secrets.token_hex(16))
        env.setdefault("JOBGATE_LINK_SECRET", secrets.token_hex(32))
        api_key = env.get("JOBGATE_API_KEY") or new_api_key()
        secret = env.get("JOBGATE_WEBHOOK_SECRET") or new_webhook_secret()
        tenants = [("dev", api_key, secret), *parse_tenants(env.get("JOBGATE_TENANTS", ""))]
        clients = create_clients(region, endpoint)
        local_runtime(clients, f"jobgate-{env['JOBGATE_STAGE']}", region, tenants, env)

        from chalice.cli.factory import CLIFactory
        from chalice.local import ThreadedHTTPServer, create_local_server

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
            for i in range(workers):
                p = Poller(clients.sqs, queue_urls[queue], app.handler_map[source.name],
                           f"{source.name}-{i}", source.batch_size, region, self.stop_event)
                p.start()
                self.threads.append(p)
        return {"url": f"http://127.0.0.1:{port}", "api_key": api_key, "webhook_secret": secret,
                "aws_endpoint": endpoint}

    def stop(self) -> None:
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
    service = LocalService()
    info = service.start()
    print(
        "\nJobgate is running on the embedded AWS\n"
        f"  URL             {info['url']}\n"
        f"  API key         {info['api_key']}   (tenant: dev)\n"
        f"  Webhook secret  {info['webhook_secret']}\n"
        f"  AWS endpoint    {info['aws_endpoint']}\n\n"
        f"  curl {info['url']}/v1/health\n"
        f"  curl -H 'Authorization: Bearer {info['api_key']}' {info['url']}/v1/services\n"
        "Ctrl-C stops it.\n",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    print("stopping...", flush=True)
    service.stop()
    return 0
