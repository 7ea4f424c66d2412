"""The real local runner (`python -m localrunner`) as a subprocess on a free port, for the
client and fuzz tests: `with live_runner() as r: ...` always stops it."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
API_KEY = "live-key-0123456789abcdef"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_TENANT, OTHER_KEY = "other", "live-other-key-0123456789"
OTHER_SECRET = "whsec_ZmFrZXNlY3JldGZvcmJvYmNvMTIzNDU2"
START_SECONDS = 45.0


@dataclass
class LiveRunner:
    proc: subprocess.Popen[bytes]
    url: str
    output: Path
    api_key: str = API_KEY
    webhook_secret: str = WEBHOOK_SECRET
    other_key: str = OTHER_KEY

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-4000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/v1/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _die_with_parent() -> None:
    """Linux: the runner gets SIGTERM if pytest dies before its fixture can stop it."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def live_runner(**extra_env: str) -> Iterator[LiveRunner]:
    port = free_port()
    # A clean environment: the test process's moto settings must not leak into the runner.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "JOBGATE_", "JOB_", "CALLBACK_", "RESULT_"))}
    tenants = ",".join(filter(None, [f"{OTHER_TENANT}:{OTHER_KEY}:{OTHER_SECRET}",
                                     extra_env.pop("JOBGATE_TENANTS", "")]))
    env.update(JOBGATE_PORT=str(port), JOBGATE_API_KEY=API_KEY, JOBGATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
               JOBGATE_TENANTS=tenants, JOBGATE_STAGE="local", PYTHONUNBUFFERED="1", **extra_env)
    python = PROJECT / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "runner.log"
        with output.open("wb") as out:
            proc = subprocess.Popen(
                [str(python if python.exists() else sys.executable), "-m", "localrunner"],
                cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        runner = LiveRunner(proc, f"http://127.0.0.1:{port}", output)
        try:
            deadline = time.monotonic() + START_SECONDS
            while not _healthy(port):
                if proc.poll() is not None:
                    raise RuntimeError(f"the local runner exited early:\n{runner.log()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the local runner did not come up:\n{runner.log()}")
                time.sleep(0.1)
            yield runner
        finally:
            _stop(proc)
