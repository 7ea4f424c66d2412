"""The `ctx` a worker handler gets: the same surface as a Lambda service's context.

It only records: progress, status variables and log lines wait here until the job's
heartbeat takes them (`take_report`) and sends them in one request; `canceled` and the
lease are set by that heartbeat. Nothing in this module talks to the network except the
lazy download of the job's content, through a function the worker hands in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

LEVELS = {0: "none", 1: "low", 2: "medium", 3: "high"}
MAX_LINES_PER_REPORT = 200  # the API's limit per heartbeat (docs/api.md, "Workers")
MAX_LOG_BYTES_PER_REPORT = 200 * 1024  # the request body stays under the API's 300 KB


class Retry(Exception):  # noqa: N818  (the name the server side uses too)
    """Raise in a handler to end this attempt and ask for another one in `after_seconds`."""

    def __init__(self, after_seconds: float, message: str | None = None):
        super().__init__(message or f"retry requested in {after_seconds:g}s")
        self.after_seconds = max(0.0, float(after_seconds))


class JobContext:
    """Handed to a handler with the job's input. Thread-safe: the heartbeat thread reads
    and updates it while the handler runs."""

    def __init__(
        self, claim: dict[str, Any], *, worker_id: str, runtime_deadline: float,
        lease_deadline: float, monotonic: Callable[[], float],
        fetch_content: Callable[[str], tuple[bytes, str | None]] | None = None,
        wake: Callable[[], None] | None = None, wall_clock: Callable[[], float] | None = None,
    ):
        self.job_id: str = str(claim["jobId"])
        self.tenant: str | None = claim.get("tenant")
        self.service: str | None = claim.get("service")
        self.attempt: int = int(claim.get("attempt") or 1)
        self.variables: dict[str, str] = dict(claim.get("variables") or {})
        level = claim.get("logLevel")
        self.log_level: int = int(level) if level is not None else 1
        self.worker_id = worker_id
        self._content_url: str | None = claim.get("contentUrl")
        self._content: bytes | None = None
        self._content_type: str | None = claim.get("contentType")
        self._content_loaded = not self._content_url
        self._fetch = fetch_content
        self._monotonic = monotonic
        self._wall = wall_clock or (lambda: datetime.now(UTC).timestamp())
        self._wake = wake or (lambda: None)
        self._lock = threading.Lock()
        self._content_lock = threading.Lock()  # not _lock: heartbeats go on during a download
        self._runtime_deadline = runtime_deadline
        self._lease_deadline = lease_deadline
        self._heartbeat_failing = False
        self._canceled = False
        self._progress: dict[str, Any] | None = None
        self._status: dict[str, str] = {}
        self._status_dirty = False
        self._lines: list[str] = []

    # -- what a handler calls ----------------------------------------------------------------
    @property
    def content(self) -> bytes | None:
        """The job's content (downloaded from the claim's `contentUrl` on first use)."""
        self._load_content()
        return self._content

    @property
    def content_type(self) -> str | None:
        self._load_content()
        return self._content_type

    def log(self, message: str, level: int = 1) -> None:
        """Keep a log line when `level` ≤ the job's `logLevel` (0 none … 3 high)."""
        if not 0 < level <= self.log_level:
            return
        stamp = datetime.fromtimestamp(self._wall(), UTC).isoformat(timespec="milliseconds")
        line = f"{stamp.replace('+00:00', 'Z')} [{LEVELS.get(level, level)}] {message}"
        with self._lock:
            self._lines.append(line)
            backlog = len(self._lines) >= MAX_LINES_PER_REPORT
        if backlog:
            self._wake()

    def progress(self, percent: float, message: str | None = None) -> None:
        percent = round(float(min(100.0, max(0.0, percent))), 2)
        with self._lock:
            self._progress = {"percent": percent, "message": message}
        self._wake()

    def set_variable(self, name: str, value: object) -> None:
        with self._lock:
            self._status[str(name)] = str(value)
            self._status_dirty = True
        self._wake()

    @property
    def canceled(self) -> bool:
        """True once the client canceled the job or this worker lost its lease (or is shutting
        down past its grace): stop; whatever the handler returns is dropped."""
        return self._canceled

    def remaining_seconds(self) -> float:
        """Seconds until JOB_MAX_RUNTIME_SECONDS; while heartbeats fail, until the lease
        this worker still holds runs out."""
        with self._lock:
            deadline = self._runtime_deadline
            if self._heartbeat_failing:
                deadline = min(deadline, self._lease_deadline)
        return max(0.0, deadline - self._monotonic())

    # -- what the worker calls -----------------------------------------------------------------
    def cancel(self) -> None:
        self._canceled = True

    def has_report(self) -> bool:
        with self._lock:
            return bool(self._progress or self._status_dirty or self._lines)

    def take_report(self) -> dict[str, Any]:
        """The heartbeat body's optional fields, removed from what is pending; hand them back
        with `restore` if the request fails."""
        with self._lock:
            report: dict[str, Any] = {}
            if self._progress is not None:
                report["progress"], self._progress = self._progress, None
            if self._status_dirty:
                report["variables"], self._status_dirty = dict(self._status), False
            if self._lines:
                count, size = 0, 0
                for line in self._lines:
                    size += len(line.encode()) + 1
                    if count and (count >= MAX_LINES_PER_REPORT or size > MAX_LOG_BYTES_PER_REPORT):
                        break
                    count += 1
                report["log"], self._lines = self._lines[:count], self._lines[count:]
            return report

    def restore(self, report: dict[str, Any]) -> None:
        """Put back what a failed heartbeat did not deliver (newer values win)."""
        with self._lock:
            if "progress" in report and self._progress is None:
                self._progress = report["progress"]
            if "variables" in report:
                self._status_dirty = True
            if report.get("log"):
                self._lines = list(report["log"]) + self._lines

    def more_pending(self) -> bool:
        with self._lock:
            return len(self._lines) >= MAX_LINES_PER_REPORT

    def heartbeat_ok(self, lease_deadline: float) -> None:
        with self._lock:
            self._lease_deadline = lease_deadline
            self._heartbeat_failing = False

    def heartbeat_failed(self) -> None:
        with self._lock:
            self._heartbeat_failing = True

    @property
    def lease_deadline(self) -> float:
        with self._lock:
            return self._lease_deadline

    def _load_content(self) -> None:
        if self._content_loaded:
            return
        with self._content_lock:  # one download, even when two threads ask at once
            if self._content_loaded:
                return
            assert self._fetch is not None and self._content_url is not None
            data, media_type = self._fetch(self._content_url)
            self._content = data
            self._content_type = self._content_type or media_type
            self._content_loaded = True
