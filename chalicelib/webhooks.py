"""Sending one webhook: Standard Webhooks signature, a 10 s budget for the whole attempt,
no redirects, and a connection pinned to the address that passed the SSRF check (no
DNS-rebinding window)."""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .urls import Address, BadUrl, check_addresses, parse_target, resolve

TIMEOUT_SECONDS = 10.0
MAX_DELAY = 43_200


@dataclass
class Attempt:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None


def sign(secrets: list[str], event_id: str, timestamp: int, body: str) -> str:
    """`v1,<sig>` per secret, space-separated (several while a secret is being rotated)."""
    from standardwebhooks import Webhook

    at = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(Webhook(s).sign(event_id, at, body) for s in secrets)


def retry_delay(retry: int, interval: int, rng: random.Random | None = None,
                schedule: str | None = "exponential") -> int:
    """Delay before the n-th retry: interval × 2^(n-1), ±10 % jitter, rounded up, ≥ 1 s,
    at most 12 h. The `fixed` schedule (IBM BAW's) waits exactly `interval` every time."""
    if schedule == "fixed":
        return int(min(MAX_DELAY, max(1, interval)))
    rng = rng or random.Random()
    base = interval * 2 ** max(0, retry - 1)
    jittered = base * rng.uniform(0.9, 1.1)
    return int(min(MAX_DELAY, max(1, -(-jittered // 1))))


class Deadline:
    """One budget for a whole attempt (DNS, connect, TLS, send, read). Per-socket timeouts
    alone restart on every byte, so a receiver dripping one byte at a time could hold the
    deliverer for ever; at the deadline a timer shuts the attempt's sockets down."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        return left

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if not self.expired:
                return
        _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def over(self) -> bool:
        return self.expired or time.monotonic() >= self.at


def _shutdown(sock: socket.socket) -> None:
    """Unblock any read or write on the socket (the plain socket call, also for TLS)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, ip: str, port: int, deadline: Deadline):
        super().__init__(host, port, timeout=deadline.left(),
                         context=ssl.create_default_context())
        self._ip, self._deadline = ip, deadline

    def connect(self) -> None:
        sock = _connect(self._ip, self.port, self._deadline)
        tls = self._context.wrap_socket(  # type: ignore[attr-defined]
            sock, server_hostname=self.host.rstrip("."), do_handshake_on_connect=False)
        self._deadline.watch(tls)
        self.sock = tls
        tls.settimeout(self._deadline.left())
        tls.do_handshake()


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, ip: str, port: int, deadline: Deadline):
        super().__init__(host, port, timeout=deadline.left())
        self._ip, self._deadline = ip, deadline

    def connect(self) -> None:
        self.sock = _connect(self._ip, self.port, self._deadline)


def _connect(ip: str, port: int, deadline: Deadline) -> socket.socket:
    sock = socket.create_connection((ip, port), deadline.left())
    deadline.watch(sock)
    sock.settimeout(deadline.left())
    return sock


def _resolve(host: str, port: int, deadline: Deadline) -> list[Address]:
    """DNS within the attempt's budget (a slow name server is the receiver's problem)."""
    if not host:
        raise BadUrl("callbackUrl must name a host")
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["addresses"] = resolve(host, port)
        except BaseException as exc:  # noqa: BLE001  (handed to the caller)
            box["error"] = exc

    worker = threading.Thread(target=run, name="webhook-dns", daemon=True)
    worker.start()
    worker.join(deadline.left())
    if worker.is_alive():
        raise TimeoutError("DNS")
    if "error" in box:
        raise box["error"]
    addresses: list[Address] = box["addresses"]
    return addresses


def post(url: str, headers: dict[str, str], body: str, allow_private: bool,
         timeout: float = TIMEOUT_SECONDS,
         forbidden_targets: Iterable[tuple[str, int]] = ()) -> Attempt:
    """POST once, within `timeout` seconds in all. Anything else than a 2xx in time (a
    redirect, a refusal, a TLS error, a timeout, a URL that cannot be sent, any exception)
    is a failed attempt: this never raises."""
    started = time.monotonic()

    def done(status: int | None, error: str | None) -> Attempt:
        return Attempt(status, error, int((time.monotonic() - started) * 1000))

    deadline = Deadline(timeout)
    try:
        with deadline:
            return _post(url, headers, body, allow_private, deadline, tuple(forbidden_targets),
                         done)
    except Exception as exc:  # noqa: BLE001  (every failure is a recorded attempt)
        if isinstance(exc, TimeoutError) or deadline.over():
            return done(None, f"timeout after {timeout:g}s")
        if isinstance(exc, BadUrl):
            return done(None, str(exc))
        if isinstance(exc, socket.gaierror | UnicodeError):
            return done(None, f"DNS: {exc}")
        return done(None, f"{type(exc).__name__}: {exc}")


def _post(url: str, headers: dict[str, str], body: str, allow_private: bool, deadline: Deadline,
          forbidden_targets: tuple[tuple[str, int], ...],
          done: Callable[[int | None, str | None], Attempt]) -> Attempt:
    target = parse_target(url)
    if target.scheme != "https" and not allow_private:
        return done(None, "callbackUrl must use https")
    addresses = _resolve(target.host, target.port, deadline)
    problem = check_addresses(addresses, target.port, allow_private, forbidden_targets)
    if problem:
        return done(None, f"blocked: {problem}")
    payload = body.encode()
    conn_cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    last_error = "no address"
    for ip in addresses:
        conn = conn_cls(target.host, str(ip), target.port, deadline)
        try:
            conn.request("POST", target.path, body=payload,
                         headers={**headers, "Host": target.host_header})
            resp = conn.getresponse()
            resp.read(65_536)
            status = resp.status
        except ssl.SSLError as exc:
            if deadline.over():
                raise TimeoutError("deadline") from None
            return done(None, f"TLS: {exc.reason or exc}")
        except (OSError, http.client.HTTPException) as exc:
            if deadline.over():
                raise TimeoutError("deadline") from None
            last_error = f"{type(exc).__name__}: {exc}"
            continue
        finally:
            conn.close()
        if deadline.over():  # a 2xx that took too long is still too late
            raise TimeoutError("deadline")
        if 200 <= status < 300:
            return done(status, None)
        if 300 <= status < 400:
            return done(status, f"HTTP {status} (redirects are not followed)")
        return done(status, f"HTTP {status}")
    return done(None, last_error)
