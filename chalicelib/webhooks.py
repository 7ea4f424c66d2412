"""Sending one webhook: Standard Webhooks signature, a 10 s budget, no redirects, and a
connection pinned to the address that passed the SSRF check (no DNS-rebinding window)."""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from .urls import forbidden, resolve

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


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, ip: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, ip: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


def post(url: str, headers: dict[str, str], body: str, allow_private: bool,
         timeout: float = TIMEOUT_SECONDS) -> Attempt:
    """POST once. Any non-2xx, redirect, refusal, TLS error or timeout is a failed attempt."""
    started = time.monotonic()

    def done(status: int | None, error: str | None) -> Attempt:
        return Attempt(status, error, int((time.monotonic() - started) * 1000))

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme != "https" and not allow_private:
        return done(None, "callbackUrl must use https")
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        return done(None, f"DNS: {exc}")
    if not allow_private:
        if any(forbidden(a) for a in addresses):
            return done(None, "blocked: the host resolves to a private or reserved address")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn_cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    last_error = "no address"
    for ip in addresses:
        conn = conn_cls(host, str(ip), port, timeout)
        try:
            conn.request("POST", path, body=body.encode(), headers={
                **headers, "Host": parts.netloc.rsplit("@", 1)[-1]})
            resp = conn.getresponse()
            resp.read(65_536)
            status = resp.status
        except TimeoutError:
            return done(None, f"timeout after {timeout:g}s")
        except ssl.SSLError as exc:
            return done(None, f"TLS: {exc.reason or exc}")
        except (OSError, http.client.HTTPException) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            continue
        finally:
            conn.close()
        if 200 <= status < 300:
            return done(status, None)
        if 300 <= status < 400:
            return done(status, f"HTTP {status} (redirects are not followed)")
        return done(status, f"HTTP {status}")
    return done(None, last_error)
