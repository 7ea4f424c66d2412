"""Typed errors: one class per HTTP status of docs/api.md's error table, all `JobgateError`."""

from __future__ import annotations

from typing import Any


class JobgateError(Exception):
    """An error answer from the API (or no answer at all, for `ConnectionFailed`).

    `status` is the HTTP status (None when there was no answer), `code` the error body's
    `error.code` (e.g. `not_found`, `validation_error`), `message` its text and `details`
    its field errors (a list of `{"loc": [...], "msg": ..., "type": ...}`).
    """

    def __init__(self, status: int | None, code: str, message: str,
                 details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details: list[dict[str, Any]] = details or []
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}

    def __str__(self) -> str:
        head = f"HTTP {self.status} {self.code}" if self.status else self.code
        text = f"{head}: {self.message}"
        fields = [_detail(d) for d in self.details if isinstance(d, dict)]
        if fields:
            text += " (" + "; ".join(f for f in fields if f) + ")"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


def _detail(d: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in d.get("loc") or [])
    msg = str(d.get("msg") or "")
    return f"{loc}: {msg}" if loc else msg


class BadRequest(JobgateError):
    """400: malformed body or parameter."""


class Unauthorized(JobgateError):
    """401: no or bad credentials."""


class Forbidden(JobgateError):
    """403: refused in front of the API (e.g. an unknown route on API Gateway)."""


class NotFound(JobgateError):
    """404: unknown job (or another tenant's), unknown service, or no result."""


class Conflict(JobgateError):
    """409: service disabled, job already finished / not finished, runId reused."""


class Gone(JobgateError):
    """410: the result expired."""


class PayloadTooLarge(JobgateError):
    """413: the body is over the limit (4 MB)."""


class UnsupportedMediaType(JobgateError):
    """415: the body's media type is not accepted."""


class ValidationFailed(JobgateError):
    """422: the request or the input fails validation; see `details`."""


class _RetryAfter(JobgateError):
    @property
    def retry_after(self) -> float | None:
        """Seconds the server asks to wait (its `Retry-After` header), if it said."""
        return parse_retry_after(self.headers.get("retry-after"))


class RateLimited(_RetryAfter):
    """429: the tenant is over its quota of active jobs."""


class Unavailable(_RetryAfter):
    """503 (or another 5xx): the service cannot queue or answer now."""


class ConnectionFailed(JobgateError):
    """No HTTP answer: refused, DNS, TLS or timeout."""

    def __init__(self, message: str):
        super().__init__(None, "connection_error", message)


class WebhookVerificationFailed(JobgateError):
    """A webhook whose signature, timestamp or body does not check out."""

    def __init__(self, message: str):
        super().__init__(None, "webhook_verification_failed", message)


class WaitTimeout(JobgateError, TimeoutError):
    """`Job.wait(timeout=...)` ran out; `job` is the last state seen."""

    def __init__(self, job: Any, timeout: float):
        super().__init__(None, "wait_timeout",
                         f"job {job.job_id} still {job.status} after {timeout:g}s")
        self.job = job


BY_STATUS: dict[int, type[JobgateError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone,
    413: PayloadTooLarge, 415: UnsupportedMediaType, 422: ValidationFailed, 429: RateLimited,
    503: Unavailable,
}


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (the delta form; an HTTP date is read too)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        import time

        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - time.time())


def error_for(status: int, body: Any, headers: dict[str, str]) -> JobgateError:
    """The typed error for an answer, from docs/api.md's error body when there is one."""
    code, message, details = f"http_{status}", "", []
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = str(err.get("code") or code)
            message = str(err.get("message") or "")
            raw = err.get("details")
            details = [d for d in raw if isinstance(d, dict)] if isinstance(raw, list) else []
        elif isinstance(body.get("message") or body.get("Message"), str):  # API Gateway's own
            message = str(body.get("message") or body.get("Message"))
    elif isinstance(body, str):
        message = " ".join(body.split())[:200]
    if not message:
        message = _REASONS.get(status, "unexpected answer")
    cls = BY_STATUS.get(status) or (Unavailable if status >= 500 else JobgateError)
    return cls(status, code, message, details, headers)


_REASONS = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
            405: "method not allowed", 409: "conflict", 410: "gone", 413: "payload too large",
            415: "unsupported media type", 422: "unprocessable", 429: "too many requests",
            500: "internal server error", 502: "bad gateway", 503: "service unavailable",
            504: "gateway timeout"}
