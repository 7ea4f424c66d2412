"""A real HTTP webhook receiver on 127.0.0.1 that answers from a script. It has its port
from the start, so it can be down (not listening: connection refused) and come up later."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """`script` is a list of status codes (or ("sleep", seconds), then 200); the last step
    repeats. Use as a context manager (listening inside), or `start()` / `stop()`."""

    def __init__(self, script: list[Any] | None = None, path: str = "/hooks?corr=abc"):
        self.script = list(script or [200])
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                with outer._lock:
                    outer.requests.append({"headers": dict(self.headers.items()), "body": body,
                                           "path": self.path, "at": time.time()})
                    step = outer.script[min(len(outer.requests), len(outer.script)) - 1]
                if isinstance(step, tuple):
                    time.sleep(step[1])
                    step = 200
                self.send_response(step)
                if 300 <= step < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        # A short poll: shutdown() waits for it (the default 0.5 s made every test 0.5 s longer).
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
