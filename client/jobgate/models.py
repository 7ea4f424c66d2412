"""The API's resources as small typed dataclasses (built from the JSON; unknown fields are
kept in `raw`, so a newer server never breaks an older client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from os import PathLike
    from pathlib import Path

    from .client import Client

TERMINAL = frozenset({"succeeded", "failed", "canceled"})


@dataclass(frozen=True)
class Progress:
    percent: float
    message: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Progress | None:
        if not isinstance(d, dict) or d.get("percent") is None:
            return None
        return cls(percent=float(d["percent"]), message=d.get("message"))


@dataclass(frozen=True)
class JobError:
    code: str
    message: str

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> JobError | None:
        if not isinstance(d, dict):
            return None
        return cls(code=str(d.get("code", "")), message=str(d.get("message", "")))


@dataclass(frozen=True)
class Callback:
    url: str
    state: str
    attempts: int = 0
    last_attempt_at: str | None = None
    last_error: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Callback | None:
        if not isinstance(d, dict):
            return None
        return cls(url=str(d.get("url", "")), state=str(d.get("state", "none")),
                   attempts=int(d.get("attempts") or 0), last_attempt_at=d.get("lastAttemptAt"),
                   last_error=d.get("lastError"))


@dataclass
class Job:
    """A job resource (GET /v1/jobs/{jobId}). Timestamps are RFC 3339 UTC strings."""

    job_id: str
    service: str
    status: str
    created_at: str
    expires_at: str | None = None
    log: str | None = None
    run_id: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration: float | None = None
    attempts: int = 0
    progress: Progress | None = None
    variables: dict[str, str] = field(default_factory=dict)
    result_url: str | None = None
    result_type: str | None = None
    result_size: int | None = None
    valid_until: str | None = None
    error: JobError | None = None
    previous: str | None = None
    next: str | None = None
    callback: Callback | None = None
    max_attempts: int | None = None  # None from a server older than the field
    retry_at: str | None = None  # only while a failed attempt waits to be retried
    # Not part of the resource: what the answer that carried it said.
    replayed: bool = field(default=False, compare=False)
    retry_after: float | None = field(default=None, compare=False, repr=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _client: Client | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], client: Client | None = None, *, replayed: bool = False,
                  retry_after: float | None = None) -> Job:
        return cls(
            job_id=str(d["jobId"]), service=str(d.get("service", "")), status=str(d.get("status", "")),
            created_at=str(d.get("createdAt", "")), expires_at=d.get("expiresAt"), log=d.get("log"),
            run_id=d.get("runId"), started_at=d.get("startedAt"), completed_at=d.get("completedAt"),
            duration=d.get("duration"), attempts=int(d.get("attempts") or 0),
            progress=Progress.from_dict(d.get("progress")),
            variables=dict(d.get("variables") or {}), result_url=d.get("resultUrl"),
            result_type=d.get("resultType"), result_size=d.get("resultSize"),
            valid_until=d.get("validUntil"), error=JobError.from_dict(d.get("error")),
            previous=d.get("previous"), next=d.get("next"),
            callback=Callback.from_dict(d.get("callback")),
            max_attempts=int(d["maxAttempts"]) if d.get("maxAttempts") else None,
            retry_at=d.get("retryAt"),
            replayed=replayed, retry_after=retry_after, raw=dict(d), _client=client,
        )

    def to_dict(self) -> dict[str, Any]:
        """The resource as the API sent it (camelCase JSON)."""
        return dict(self.raw)

    @property
    def finished(self) -> bool:
        """succeeded, failed or canceled."""
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def percent(self) -> float | None:
        return self.progress.percent if self.progress else None

    # -- conveniences that call the client the job came from ---------------------------
    def _require_client(self) -> Client:
        if self._client is None:
            raise RuntimeError("this Job is not attached to a Client")
        return self._client

    def refresh(self) -> Job:
        return self._require_client().get(self.job_id)

    def wait(self, timeout: float | None = None,
             on_progress: Callable[[Job], None] | None = None) -> Job:
        """Poll until the job is finished (honouring `Retry-After`) and return it.

        `on_progress(job)` is called after each poll whose status, progress or attempt
        differs from the previous one. Raises `WaitTimeout` (with `.job`) after `timeout` seconds.
        """
        return self._require_client().wait(self, timeout=timeout, on_progress=on_progress)

    def cancel(self) -> Job:
        return self._require_client().cancel(self.job_id)

    def delete(self) -> None:
        self._require_client().delete(self.job_id)

    def download_result(self, path: str | PathLike[str] | None = None) -> bytes | Path:
        return self._require_client().download_result(self.job_id, path)

    def get_log(self) -> str:
        return self._require_client().log(self.job_id)


@dataclass(frozen=True)
class Service:
    name: str
    enabled: bool
    description: str
    input_schema: dict[str, Any]
    status_variables: list[str]
    content_variable: str | None
    timeout_seconds: int
    result_ttl_seconds: int
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Service:
        return cls(name=str(d["name"]), enabled=bool(d.get("enabled", True)),
                   description=str(d.get("description", "")),
                   input_schema=dict(d.get("inputSchema") or {}),
                   status_variables=list(d.get("statusVariables") or []),
                   content_variable=d.get("contentVariable"),
                   timeout_seconds=int(d.get("timeoutSeconds") or 0),
                   result_ttl_seconds=int(d.get("resultTtlSeconds") or 0), raw=dict(d))


@dataclass(frozen=True)
class Delivery:
    attempt: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Delivery:
        return cls(attempt=int(d.get("attempt") or 0), at=str(d.get("at", "")),
                   status_code=d.get("statusCode"), error=d.get("error"),
                   duration_ms=int(d.get("durationMs") or 0), raw=dict(d))


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook: `id` is the `webhook-id` header (the same on every retry of the
    event: de-duplicate on it), `type` is `job.finished`, `job` the job as it ended."""

    id: str
    type: str
    timestamp: str
    job: Job
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
