"""The worker: runs one job message. Every step can be repeated: the lease makes a
duplicate delivery wait, the terminal write is conditional, and whatever follows the
terminal write (callback, next job of a chain) is re-done when the message comes back."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from . import services, telemetry
from .ids import new_job_id
from .jobs import FAILED, QUEUED, RUNNING, SUCCEEDED, Job, holds_place, iso, retry_delay
from .messages import MAX_VISIBILITY, Retry, parse_job_message
from .objectkeys import log_key, result_key
from .ports import BlobPort, Conflict, JobStorePort, QueuePort, Unavailable
from .services._deadline import call_with_deadline
from .services.base import (
    END_MARGIN_SECONDS,
    JOB_FUNCTION_TIMEOUT_SECONDS,
    LEVELS,
    Canceled,
    Result,
    TimedOut,
)
from .services.base import Retry as RetryRequested  # a handler's; .messages.Retry is ours
from .settings import Settings
from .views import JobView

log = logging.getLogger("jobgate.worker")
LEASE_MARGIN = 30.0
PROGRESS_INTERVAL = 1.0
CANCEL_CHECK_INTERVAL = 2.0


class RunContext:
    """The `Context` handed to a service handler, backed by the job's item."""

    def __init__(self, runner: Worker, job: Job, token: str, deadline: float):
        self._runner, self._job, self._token, self._deadline = runner, job, token, deadline
        self.job_id = job.job_id
        self.variables = dict(job.variables)
        self.content: bytes | None = None
        self.content_type = job.content_type
        self.lines: list[str] = []
        self._vars: dict[str, str] = dict(job.status_vars)
        self._pending: dict[str, Any] = {}
        self._last_write = 0.0
        self._last_check = runner.ticks()
        self._canceled = False
        self.latest_progress: dict[str, Any] = {}
        # Closed once the attempt ended without the handler (its deadline passed): from then
        # on the handler's thread may neither change what was recorded nor write the job.
        self._lock = threading.RLock()
        self.closed = False

    def close(self) -> None:
        with self._lock:
            self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise TimedOut("the service's timeout has passed")

    def log(self, message: str, level: int = 1) -> None:
        with self._lock:
            self._check_open()
            self.note(message, level)

    def note(self, message: str, level: int = 1) -> None:
        """A line from the worker itself (allowed after the handler's deadline)."""
        with self._lock:
            if 0 < level <= self._job.log_level:
                stamp = iso(self._runner.clock())
                self.lines.append(f"{stamp} [{LEVELS.get(level, level)}] {message}")

    def progress(self, percent: float, message: str | None = None) -> None:
        with self._lock:
            self._check_open()
            latest = {"progressPercent": round(float(min(100.0, max(0.0, percent))), 2),
                      "progressMessage": message}
            self._pending.update(latest)
            self.latest_progress = latest
            self._flush()

    def set_variable(self, name: str, value: object) -> None:
        with self._lock:
            self._check_open()
            self._vars[name] = str(value)
            self._pending["statusVars"] = dict(self._vars)
            self._flush()

    @property
    def canceled(self) -> bool:
        now = self._runner.ticks()
        if self.closed or now >= self._deadline:
            return True
        if not self._canceled and now - self._last_check >= CANCEL_CHECK_INTERVAL:
            self._last_check = now
            job = self._runner.store.get(self._job.tenant, self._job.job_id, self._runner.clock(),
                                         consistent=False)
            self._canceled = job is None or job.status != RUNNING or job.lease_token != self._token
        return self._canceled

    def remaining_seconds(self) -> float:
        return max(0.0, self._deadline - self._runner.ticks())

    def _flush(self, force: bool = False) -> None:
        """Progress writes are throttled to about one a second."""
        now = self._runner.ticks()
        if not self._pending or (not force and now - self._last_write < PROGRESS_INTERVAL):
            return
        values = {k: v for k, v in self._pending.items() if v is not None}
        self._pending.clear()
        self._last_write = now
        try:
            self._runner.store.heartbeat(self._job.tenant, self._job.job_id, self._token, values)
        except Conflict:
            self._canceled = True
            raise Canceled() from None

    @property
    def status_vars(self) -> dict[str, str]:
        return self._vars


class Worker:
    def __init__(
        self, store: JobStorePort, blobs: BlobPort, dispatcher: QueuePort, settings: Settings,
        view: JobView, clock: Callable[[], float] = time.time,
        after_end: Callable[..., None] | None = None,
        ticks: Callable[[], float] = time.monotonic,
    ):
        self.store, self.blobs, self.dispatcher, self.settings = store, blobs, dispatcher, settings
        self.view = view
        self.clock = clock
        # The monotonic clock of deadlines and throttles (tests move it by hand).
        self.ticks = ticks
        self.after_end = after_end or (lambda job, fresh=True: None)

    def process(self, body: str,
                time_left: float = JOB_FUNCTION_TIMEOUT_SECONDS - END_MARGIN_SECONDS) -> None:
        """Handle one job message. Returns when the message may be deleted; raises Retry
        (hide and retry later) or Malformed (dead-letter it). `time_left`: what this
        invocation may still spend on a handler (Lambda's remaining time minus the margin
        to end an attempt)."""
        msg = parse_job_message(body)
        tenant, job_id = msg.tenant, msg.job_id
        telemetry.bind(tenant=tenant, jobId=job_id)
        now = self.clock()
        name = msg.service
        if name is None:  # an older message: read the job to learn its service
            job = self.store.get(tenant, job_id, now)
            if job is None or job.terminal:
                self.settle(job, now)
                return
            name = job.service
        service = services.get(name)
        if service is not None and service.runs_on == "lambda" \
                and time_left < service.timeout_seconds:
            # Not enough time left in this invocation to honour the service's timeout: back
            # to the queue at once, before the claim, so no attempt is used.
            raise Retry(0, f"{time_left:.0f}s left, {service.name} may need "
                           f"{service.timeout_seconds}s")
        token = uuid.uuid4().hex
        lease = float(service.timeout_seconds if service else 60) + LEASE_MARGIN
        try:
            job = self.store.claim(tenant, job_id, token, lease, now)
        except Conflict as conflict:
            self.settle(conflict.job, now)
            return
        telemetry.bind(service=job.service, attempt=job.attempts)
        if job.attempts == 1:
            telemetry.metric("QueueWait", round(now - job.created_at, 3), "Seconds")
        if holds_place(job, claimed=True):
            self._left_queue(job)
        if service is None:
            self._end(job, token, FAILED, {"errorCode": "unknown_service",
                                           "errorMessage": f"service {job.service!r} is gone"})
            return
        deadline = self.ticks() + min(float(service.timeout_seconds), time_left)
        self._run(job, service, token, deadline)

    def settle(self, job: Job | None, now: float, code: str = "attempts_exhausted",
               message: str = "the job's worker stopped responding") -> None:
        """A job this message cannot run: drop it if gone, finish what follows its end if it
        ended, wait (Retry) while someone holds its lease, else fail it with `code`."""
        if job is None or job.expired(now):
            log.info("job gone, dropping message")
            return
        if job.terminal:
            self.after_end(job, fresh=False)  # a crash may have come between the end and this
            return
        if job.status == RUNNING and (job.lease_until or 0) >= now:
            # Someone holds the lease (a duplicate delivery, or a live worker): come back
            # after it lapses, in case that worker dies.
            raise Retry(int((job.lease_until or now) - now) + 1, "lease held")
        # No one holds the job: its attempts are used up (its last worker died), or its
        # message was dead-lettered.
        self.fail_abandoned(job, code, message)

    def fail_abandoned(self, job: Job, code: str, default_message: str) -> None:
        """End a job nobody holds (queued, or its lease lapsed) as failed."""
        now = self.clock()
        values: dict[str, Any] = {"errorCode": code,
                                  "errorMessage": job.error_message or default_message}
        try:
            ended = self.store.finish(job.tenant, job.job_id, None, FAILED,
                                      self.view.with_event(job, FAILED, values, now), now)
        except Conflict as lost:
            if lost.job is not None and lost.job.terminal:
                self.after_end(lost.job, fresh=False)
            return
        if job.status == QUEUED and holds_place(job):
            self._left_queue(job)  # it never started
        telemetry.metric("JobsFailed", JobService=job.service)
        log.warning("abandoned job failed", extra={"errorCode": code})
        self.after_end(ended)

    def _left_queue(self, job: Job) -> None:
        """Give back the job's place among the jobs waiting (chalicelib/capacity.py)."""
        if self.dispatcher.capacity is None:
            return
        try:
            self.dispatcher.capacity.release(job.job_id, self.settings.max_queue_depth)
        except Unavailable:
            log.warning("a waiting-count place was not given back (repaired later)")

    def _run(self, job: Job, service: services.Service, token: str, deadline: float) -> None:
        ctx = RunContext(self, job, token, deadline)
        ctx.note(f"attempt {job.attempts} of {job.max_attempts} started")
        if job.attempts > 1 and job.error_message:
            ctx.note(f"previous attempt failed: {job.error_message}")
        try:
            # Only the job's stored input failing the service's model is bad input; the same
            # error raised by the handler's own code is a handler failure, retried.
            data = service.input_model.model_validate(job.input or {}) if service.input_model \
                else job.input
        except ValidationError as exc:
            self._end(job, token, FAILED, {"errorCode": "invalid_input",
                                           "errorMessage": str(exc)[:1000]}, ctx)
            return
        key = result_key(job.tenant, job.job_id, token)

        def attempt() -> tuple[str, int, str]:
            ctx.content = self.blobs.get(job.content_key) if job.content_key \
                else job.content_inline
            assert service.handler is not None  # a Lambda service has one (Service checks)
            value = service.handler(data, ctx)
            # Storing the result is part of the attempt: a streamed result runs the handler's
            # generator here, and a failed write is retried like a failed handler.
            stored = self._store_result(job, token, value)
            if ctx.closed:  # finished after its deadline: the attempt has ended without it
                self.blobs.delete(key)
            return stored

        outcome = call_with_deadline(attempt, deadline, on_timeout=ctx.close, name=job.job_id,
                                     clock=self.ticks)
        error = outcome.error
        # An error the handler raised at or after its deadline (often the TimedOut of a
        # refused ctx call, or `if ctx.canceled: raise Canceled()`) is the timeout too.
        late = isinstance(error, Exception) and self.ticks() >= deadline \
            and self._still_ours(job, token)
        if outcome.timed_out or late:
            self.blobs.delete(key)
            self._attempt_failed(job, token, TimedOut(
                f"still running after the service's timeout of {service.timeout_seconds}s"),
                ctx, "timed_out")
        elif isinstance(error, Canceled):
            self._handler_canceled(job, token, error, ctx)
        elif isinstance(error, RetryRequested):
            self.blobs.delete(key)
            self._attempt_failed(job, token, error, ctx, "attempts_exhausted",
                                 delay=int(error.after_seconds + 0.999))
        elif isinstance(error, Exception):  # any handler failure is the job's failure
            self.blobs.delete(key)
            self._attempt_failed(job, token, error, ctx)
        elif error is not None:
            raise error  # not a failure of the job: the process is going down
        else:
            self._succeed(job, service, token, outcome.value, ctx)

    def _still_ours(self, job: Job, token: str) -> bool:
        current = self.store.get(job.tenant, job.job_id, self.clock())
        return current is not None and current.status == RUNNING and current.lease_token == token

    def _handler_canceled(self, job: Job, token: str, exc: Canceled, ctx: RunContext) -> None:
        current = self.store.get(job.tenant, job.job_id, self.clock())
        if current is not None and current.status == RUNNING and current.lease_token == token:
            # Not canceled, still ours: the handler gave up (or read a stale item).
            self._attempt_failed(job, token, exc, ctx)
            return
        log.info("job canceled while running", extra={"jobId": job.job_id})
        if current is not None and current.terminal:
            self.after_end(current, fresh=False)

    def _attempt_failed(self, job: Job, token: str, exc: BaseException, ctx: RunContext,
                        code: str = "handler_error", delay: int | None = None) -> None:
        """Try again later while attempts remain (after `delay`, else the backoff), else end
        the job failed with `code`."""
        ctx.close()  # nothing the handler's thread does from now on is recorded
        if isinstance(exc, RetryRequested):
            message = f"the handler asked for another attempt in {exc.after_seconds:g}s" + (
                f": {exc.reason}" if exc.reason else "")
        else:
            message = f"{type(exc).__name__}: {exc}"[:1000]
        ctx.note(f"failed: {message}")
        log.warning("attempt failed", extra={"jobId": job.job_id, "attempt": job.attempts,
                                             "errorCode": code})
        if job.attempts < job.max_attempts:
            again = "retry_requested" if isinstance(exc, RetryRequested) else code
            # The message comes back after `wait` (SQS caps it at MAX_VISIBILITY): the job
            # records when, for its resource's `retryAt`.
            wait = min(retry_delay(job.attempts, self.settings.job_retry_base_seconds)
                       if delay is None else delay, MAX_VISIBILITY)
            try:
                self._keep_attempt_log(job, token, ctx)
                self.store.release(job.tenant, job.job_id, token, again, message,
                                   self.clock() + wait)
            except Conflict:
                return  # canceled meanwhile
            raise Retry(wait, message) from exc
        self._end(job, token, FAILED, {"errorCode": code, "errorMessage": message}, ctx)

    def _store_result(self, job: Job, token: str, value: Any) -> tuple[str, int, str]:
        """Write the result under this lease's key: (key, size, content type)."""
        key = result_key(job.tenant, job.job_id, token)
        if isinstance(value, Result):
            body = value.body
            if isinstance(body, bytes | bytearray):
                self.blobs.put(key, bytes(body), value.content_type)
                return key, len(body), value.content_type
            return key, self.blobs.upload(key, _as_stream(body), value.content_type), \
                value.content_type
        data = json.dumps(value, separators=(",", ":"), default=str).encode()
        self.blobs.put(key, data, "application/json")
        return key, len(data), "application/json"

    def _succeed(self, job: Job, service: services.Service, token: str,
                 stored: tuple[str, int, str], ctx: RunContext) -> None:
        key, size, content_type = stored
        ctx.note("succeeded")
        ttl = service.result_ttl_seconds or self.settings.result_ttl_seconds
        ended = self._end(job, token, SUCCEEDED, {
            "resultKey": key, "resultType": content_type, "resultSize": size,
            "validUntil": self.clock() + ttl, "progressPercent": 100.0,
            "progressMessage": ctx.latest_progress.get("progressMessage"),
            "errorCode": None, "errorMessage": None,
            "next": new_job_id() if job.chain else None,
        }, ctx)
        if ended is None:
            self.blobs.delete(key)  # canceled meanwhile: the late result is dropped

    def _end(self, job: Job, token: str, status: str, values: dict[str, Any],
             ctx: RunContext | None = None) -> Job | None:
        values = dict(values)
        if ctx is not None:
            values = {**ctx.latest_progress, **values}  # what throttling held back
            values["statusVars"] = ctx.status_vars or None
            values.update(self._store_log(job, token, ctx.lines))
        now = self.clock()
        try:
            ended = self.store.finish(job.tenant, job.job_id, token, status,
                                      self.view.with_event(job, status, values, now), now)
        except Conflict as lost:
            self.blobs.delete(values.get("logKey"))  # written for a write that lost
            # Canceled (or re-leased) meanwhile; whoever ended it may have died before
            # queueing its webhook, so make sure it is queued.
            if lost.job is not None and lost.job.terminal:
                self.after_end(lost.job, fresh=False)
            return None
        if "logKey" in values and job.log_key and job.log_key != values["logKey"]:
            self.blobs.delete(job.log_key)  # earlier attempts' log, copied into the new one
        telemetry.metric(f"Jobs{status.title()}", JobService=job.service)
        if status == SUCCEEDED and ended.started_at is not None:
            telemetry.metric("JobDuration", round(now - ended.started_at, 3), "Seconds",
                             JobService=job.service)
        log.info("job %s", status, extra={"status": status})
        self.after_end(ended)
        return ended

    def _store_log(self, job: Job, token: str, lines: list[str]) -> dict[str, Any]:
        """The job's whole log so far, as item values: the earlier attempts' log (kept on
        the item by `_keep_attempt_log`, inline or in S3) followed by this attempt's lines
        under a `--- attempt n of m ---` header. Inline while it fits the inline limit,
        else one S3 object under this lease's key (a lapsed worker never overwrites it)."""
        earlier = self._earlier_log(job)
        if not lines and not earlier:
            return {}
        text = earlier
        if lines:
            text += f"--- attempt {job.attempts} of {job.max_attempts} ---\n"
            text += "\n".join(lines) + "\n"
        data = text.encode()
        if len(data) <= self.settings.inline_log_limit:
            return {"logInline": text, "logSize": len(data), "logKey": None}
        key = log_key(job.tenant, job.job_id, token)
        self.blobs.put(key, data, "text/plain; charset=utf-8")
        return {"logKey": key, "logSize": len(data), "logInline": None}

    def _earlier_log(self, job: Job) -> str:
        if job.log_key:
            data = self.blobs.get(job.log_key)
            return data.decode("utf-8", "replace") if data else ""
        return job.log_inline or ""

    def _keep_attempt_log(self, job: Job, token: str, ctx: RunContext) -> None:
        """Before a failed attempt gives the job back, write its log lines onto the item
        (under its lease), so the next attempt's log starts with them. Raises Conflict
        when the lease was lost meanwhile."""
        values = self._store_log(job, token, ctx.lines)
        if not values:
            return
        try:
            self.store.heartbeat(job.tenant, job.job_id, token, values)
        except Conflict:
            self.blobs.delete(values.get("logKey"))
            raise
        if job.log_key and job.log_key != values.get("logKey"):
            self.blobs.delete(job.log_key)


class _IterStream:
    """A read()-able view of an iterator of byte chunks, for multipart uploads."""

    def __init__(self, chunks: Any):
        self._it = iter(chunks)
        self._buf = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        if size < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:size], self._buf[size:]
        return out


def _as_stream(body: Any) -> Any:
    return body if hasattr(body, "read") else _IterStream(body)
