"""`jobgate.Worker`: runs the jobs of worker services (`runsOn: "worker"`) anywhere.

    from jobgate import Retry, Worker

    def report(input, ctx):
        ctx.progress(50, "half way")
        return {"ok": True}

    Worker("https://.../api", "jgw_...", {"report": report}, concurrency=4).run()

One thread claims (`POST /v1/worker/claim`, long poll, then backing off when idle, see
`backoff.IdleSchedule`) only while a slot of `concurrency` is free; each claimed job runs in
its own thread with a heartbeat thread beside it, which extends the lease every lease/3
and carries the job's progress, status variables and log lines. The result goes inline in
`complete`, or to the presigned `resultUploadUrl` first. A request that gets no answer (or
a 5xx/429) is retried with backoff, the final ones for as long as the lease holds, so a
computed result is not lost to a network blip. `run()` returns after `stop()` (SIGTERM or
SIGINT by default): claiming stops, running jobs get `grace` seconds to finish, the rest are
failed as `worker_shutdown` (retryable) so another worker takes them at once.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from . import __version__
from .backoff import IdleSchedule, attempt_retry_seconds, retry_delay
from .errors import ConnectionFailed, JobgateError, error_for, parse_retry_after
from .worker_context import JobContext, Retry
from .worker_results import Inline, Upload, encode

log = logging.getLogger("jobgate.worker")

Handler = Callable[[Any, JobContext], Any]
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_RUNTIME_SECONDS = 86400.0
REPORT_SPACING_SECONDS = 5.0  # progress reaches the client this often at most (one request)
REQUEST_TIMEOUT = 30.0
HEARTBEAT_TIMEOUT = 10.0  # a shutdown may wait for one heartbeat in flight
SHUTDOWN_REPORT_SECONDS = 5.0  # budget to fail each unfinished job when the grace is over
FATAL_CLAIM_STATUSES = (400, 401, 403, 404, 422)
CLAIM_MARGIN_SECONDS = 5.0  # a claim answers within its waitSeconds and this
FINAL_REPORTS = 10  # heartbeats at most to send what a finished job still has to report


class WorkerStopped(JobgateError):
    """The worker could not go on (its key or services were refused); `cause` says why."""

    def __init__(self, cause: JobgateError):
        super().__init__(cause.status, cause.code, f"worker stopped: {cause}")
        self.cause = cause


@dataclass
class _Job:
    claim: dict[str, Any]
    ctx: JobContext
    token: str
    started: float
    lease_seconds: float
    upload_url: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    state: str = "running"  # running -> reporting | abandoned -> done
    wake: threading.Event = field(default_factory=threading.Event)
    stop_heartbeat: threading.Event = field(default_factory=threading.Event)
    heartbeat_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def job_id(self) -> str:
        return self.ctx.job_id

    def to_state(self, new: str) -> bool:
        """Move running -> `new` once; False when shutdown or the job thread came first."""
        with self.lock:
            if self.state != "running":
                return False
            self.state = new
            return True


class Worker:
    """Claims and runs jobs of `handlers`' services until `stop()` (or SIGTERM/SIGINT).

    `url` and `worker_key` default to `JOBGATE_URL` and `JOBGATE_WORKER_KEY`. A handler
    is `handler(input, ctx)` (`input`: the job's JSON input, `{}` when none; `ctx`: a
    `JobContext`) and returns JSON, bytes, a path, or `Result(body, content_type)`; it
    raises `Retry(after_seconds)` for a later attempt, any other exception to fail this
    attempt. `sleep`, `monotonic` and `transport` are for tests.
    """

    def __init__(
        self, url: str | None = None, worker_key: str | None = None,
        handlers: Mapping[str, Handler] | None = None, concurrency: int = 4, *,
        grace: float = 30.0, worker_id: str | None = None,
        schedule: IdleSchedule | None = None, heartbeat_seconds: float | None = None,
        max_runtime_seconds: float | None = None, retry_base_seconds: float = 2.0,
        install_signals: bool = True, transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None, monotonic: Callable[[], float] = time.monotonic,
    ):
        url = (url or os.environ.get("JOBGATE_URL") or "").strip()
        worker_key = worker_key or os.environ.get("JOBGATE_WORKER_KEY") or ""
        if not url:
            raise ValueError("no API URL: pass url= or set JOBGATE_URL")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the API URL must start with http:// or https://, not {url!r}")
        if not worker_key:
            raise ValueError("no worker key: pass worker_key= or set JOBGATE_WORKER_KEY")
        if not handlers:
            raise ValueError("no handlers: pass {service name: handler}")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.url = url.rstrip("/")
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.grace = float(grace)
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.schedule = schedule or IdleSchedule()
        self.heartbeat_seconds = heartbeat_seconds
        self.max_runtime_seconds = float(max_runtime_seconds or os.environ.get(
            "JOB_MAX_RUNTIME_SECONDS") or DEFAULT_MAX_RUNTIME_SECONDS)
        self.retry_base_seconds = retry_base_seconds
        self.install_signals = install_signals
        self._monotonic = monotonic
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait  # a pause ends early when stopping
        self._sleep_injected = sleep is not None
        self._grace_deadline: float | None = None
        self._hurry = threading.Event()  # a second stop: no more waiting for anything
        self._claim_until: float | None = None  # when the claim under way answers at the latest
        self._fatal: JobgateError | None = None
        self._slots = threading.BoundedSemaphore(concurrency)
        self._active: dict[str, _Job] = {}
        self._active_changed = threading.Condition()
        headers = {"Accept": "application/json", "Authorization": f"Bearer {worker_key}",
                   "User-Agent": f"jobgate-worker/{__version__} ({self.worker_id})"}
        self._http = httpx.Client(base_url=self.url + "/", headers=headers, timeout=REQUEST_TIMEOUT,
                                  follow_redirects=False, transport=transport)
        # Presigned URLs carry their own authority: never send the worker key there.
        self._plain = httpx.Client(timeout=REQUEST_TIMEOUT, follow_redirects=True, transport=transport)

    def __repr__(self) -> str:
        return f"Worker({self.url!r}, services={sorted(self.handlers)})"

    # -- lifecycle -------------------------------------------------------------------------------
    def run(self) -> None:
        """Claim and run jobs until `stop()`; then finish or fail the running ones and return.
        Raises `WorkerStopped` when the API refused the worker key or its services."""
        restore = self._install_signal_handlers() if self.install_signals else {}
        claimer = threading.Thread(target=self._claim_loop, name="jobgate-claim", daemon=True)
        try:
            log.info("worker %s claiming %s from %s (concurrency %d)", self.worker_id,
                     ",".join(sorted(self.handlers)), self.url, self.concurrency)
            claimer.start()
            while not self._stopping.wait(0.5):  # short waits: signals run on this thread
                pass
            self._drain(claimer)
        finally:
            for signum, previous in restore.items():
                signal.signal(signum, previous)
            self._http.close()
            self._plain.close()
        if self._fatal is not None:
            raise WorkerStopped(self._fatal)

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; running jobs get `grace` seconds (default: the worker's) to end.
        Safe from any thread and from a signal handler; a second call ends the grace now."""
        now = time.monotonic()
        if self._stopping.is_set():
            self._grace_deadline = now
            self._hurry.set()
            return
        self._grace_deadline = now + (self.grace if grace is None else grace)
        self._stopping.set()

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, _frame: Any) -> None:
            again = self._stopping.is_set()
            log.info("%s: %s", signal.Signals(signum).name,
                     "failing the running jobs now" if again else
                     f"no more claims; running jobs have {self.grace:g}s to finish")
            self.stop()

        return {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def _drain(self, claimer: threading.Thread) -> None:
        """Wait for the claim under way and the running jobs until the grace deadline, then
        fail what is still running (`worker_shutdown`, retryable) and report nothing more."""
        def left() -> float:
            return (self._grace_deadline or 0.0) - time.monotonic()

        with self._active_changed:
            while self._active and left() > 0:
                self._active_changed.wait(min(0.2, max(0.0, left())))
            unfinished = list(self._active.values())
        reporters = []
        for job in unfinished:
            if not job.to_state("abandoned"):
                continue  # its result is being reported right now
            job.ctx.cancel()
            job.stop_heartbeat.set()
            job.wake.set()
            log.info("job %s not finished within the grace: failed as worker_shutdown", job.job_id)
            reporter = threading.Thread(target=self._report_fail, daemon=True, args=(
                job, "worker_shutdown", f"worker {self.worker_id} shut down before the job ended",
                0.0), kwargs={"until": time.monotonic, "budget": SHUTDOWN_REPORT_SECONDS})
            reporter.start()
            reporters.append(reporter)
        # A claim under way is waited for (its job, if one comes, is handed straight back):
        # a long poll left behind would take a job for a worker that is gone, and the job
        # would wait for that lease to lapse.
        while claimer.is_alive() and not self._hurry.is_set() and (
                left() > 0 or time.monotonic() < (self._claim_until or 0.0)):
            claimer.join(0.2)
        end = time.monotonic() + SHUTDOWN_REPORT_SECONDS + HEARTBEAT_TIMEOUT
        for reporter in reporters:  # in parallel: the exit waits for the slowest, not the sum
            reporter.join(max(0.0, end - time.monotonic()))
        with self._active_changed:  # results being reported when the grace ended: let them land
            while any(j.state == "reporting" for j in self._active.values()) and time.monotonic() < end:
                self._active_changed.wait(min(0.2, max(0.0, end - time.monotonic())))

    # -- claiming ----------------------------------------------------------------------------------
    def _claim_loop(self) -> None:
        empty = failures = 0
        services = sorted(self.handlers)
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.5):
                continue
            handed_over = False
            try:
                wait = self.schedule.wait_seconds(empty)
                self._claim_until = time.monotonic() + wait + CLAIM_MARGIN_SECONDS
                try:
                    resp = self._http.post("v1/worker/claim", json={"services": services,
                                                                   "waitSeconds": wait},
                                           timeout=wait + REQUEST_TIMEOUT)
                except httpx.TransportError as exc:
                    failures += 1
                    delay = retry_delay(failures, base=1.0, cap=60.0)
                    log.warning("claim failed (%s): retrying in %.1fs", _describe(exc), delay)
                    self._sleep(delay)
                    continue
                if resp.status_code == 200:
                    failures, empty = 0, 0
                    handed_over = self._start(resp)
                    continue
                if resp.status_code == 204:
                    failures = 0
                    empty += 1
                    pause = self.schedule.pause(empty)
                    if pause:
                        self._sleep(pause)
                    continue
                error = _error(resp)
                if resp.status_code in FATAL_CLAIM_STATUSES:
                    log.error("claim refused: %s", error)
                    self._fatal = error
                    self.stop(grace=self.grace)
                    return
                failures += 1
                delay = parse_retry_after(resp.headers.get("retry-after")) or retry_delay(
                    failures, base=1.0, cap=60.0)
                log.warning("claim answered %s: retrying in %.1fs", error, delay)
                self._sleep(delay)
            finally:
                if not handed_over:
                    self._slots.release()

    def _start(self, resp: httpx.Response) -> bool:
        """Start a thread for the claimed job; True when the thread owns the slot now."""
        sent_at = self._monotonic()
        try:
            claim = resp.json()
            token = str(claim["leaseToken"])
            job_id = str(claim["jobId"])
        except (ValueError, KeyError, TypeError):
            log.error("claim answer without jobId/leaseToken: ignored")
            return False
        lease = _lease_seconds(claim.get("leaseExpiresAt"), resp.headers.get("date"))
        # The attempt's run deadline, on the server's clock like the lease.
        max_runtime = _seconds_left(claim.get("deadlineAt"), resp.headers.get("date"),
                                    self.max_runtime_seconds)
        ctx = JobContext(claim, worker_id=self.worker_id, runtime_deadline=sent_at + max_runtime,
                         lease_deadline=sent_at + lease, monotonic=self._monotonic,
                         fetch_content=self._fetch_content)
        job = _Job(claim, ctx, token, sent_at, lease, claim.get("resultUploadUrl"))
        ctx._wake = job.wake.set
        if self._stopping.is_set() or claim.get("service") not in self.handlers:
            # Shutting down (or a service we do not run): hand it straight back.
            why = ("worker_shutdown", "the worker is shutting down") if self._stopping.is_set() \
                else ("unknown_service", f"this worker has no handler for {claim.get('service')!r}")
            log.info("job %s claimed but not run (%s): handed back", job_id, why[0])
            self._report_fail(job, why[0], why[1], 0.0, until=time.monotonic,
                              budget=SHUTDOWN_REPORT_SECONDS)
            return False
        with self._active_changed:
            self._active[job_id] = job
        threading.Thread(target=self._run_job, args=(job,), name=f"jobgate-job-{job_id}",
                         daemon=True).start()
        return True

    # -- one job -----------------------------------------------------------------------------------
    def _run_job(self, job: _Job) -> None:
        ctx, claim = job.ctx, job.claim
        heartbeat = threading.Thread(target=self._heartbeat_loop, args=(job,),
                                     name=f"jobgate-heartbeat-{job.job_id}", daemon=True)
        heartbeat.start()
        log.info("job %s %s attempt %s started", job.job_id, claim.get("service"), ctx.attempt)
        outcome = "?"
        try:
            handler = self.handlers[str(claim.get("service"))]
            failure: tuple[str, str, float] | None = None
            value: Any = None
            try:
                value = handler(claim.get("input") if claim.get("input") is not None else {}, ctx)
            except Retry as exc:
                failure = ("handler_error", str(exc)[:1000], exc.after_seconds)
            except BaseException as exc:  # noqa: BLE001  (any handler failure fails the attempt)
                failure = ("handler_error", f"{type(exc).__name__}: {exc}"[:1000],
                           attempt_retry_seconds(ctx.attempt, self.retry_base_seconds))
            outcome = self._finish(job, value, failure)
        finally:
            job.stop_heartbeat.set()
            job.wake.set()
            with job.lock:
                job.state = "done"
            with self._active_changed:
                self._active.pop(job.job_id, None)
                self._active_changed.notify_all()
            self._slots.release()
            log.info("job %s %s (%.1fs)", job.job_id, outcome, self._monotonic() - job.started)

    def _finish(self, job: _Job, value: Any, failure: tuple[str, str, float] | None) -> str:
        """Report the handler's outcome; the words returned go to the job's end line."""
        ctx = job.ctx
        if not job.to_state("reporting"):
            return "stopped by the shutdown"
        if ctx.canceled:
            return "canceled (nothing reported)"
        if failure is None:
            try:
                encoded = encode(value)
            except Exception as exc:  # noqa: BLE001  (an unreadable result fails the attempt)
                failure = ("handler_error", f"result: {type(exc).__name__}: {exc}"[:1000],
                           attempt_retry_seconds(ctx.attempt, self.retry_base_seconds))
        with job.heartbeat_lock:  # the last progress, variables and lines go first
            for _ in range(FINAL_REPORTS):  # a backlog of lines takes a few heartbeats
                if not ctx.has_report() or not self._heartbeat(job) or ctx.canceled:
                    break
        if ctx.canceled:
            return "canceled (nothing reported)"
        if failure is not None:
            ok = self._report_fail(job, *failure, until=lambda: ctx.lease_deadline)
            return f"failed ({failure[0]}: {failure[1]}), retry in {failure[2]:g}s" if ok \
                else "failed, not reported (lease lost)"
        return self._report_result(job, encoded)

    def _report_result(self, job: _Job, encoded: Inline | Upload) -> str:
        ctx, path = job.ctx, f"v1/worker/jobs/{quote(job.job_id, safe='')}/complete"
        token = job.token

        def until() -> float:
            return ctx.lease_deadline

        if isinstance(encoded, Inline):
            body = b'{"leaseToken":' + _json_str(token) + b',"result":' + encoded.data + b"}"
            resp = self._call(lambda: self._final_post(
                job, path, content=body, headers={"Content-Type": "application/json"}), until)
            if resp is not None and resp.status_code == 413:  # the server's limit is lower
                encoded = Upload("application/json", len(encoded.data), _bytes=encoded.data)
            else:
                return self._completed(job, resp)
        try:
            if not job.upload_url:
                return self._fail_result(job, "no resultUploadUrl in the claim")
            size, kind = encoded.size, encoded.content_type

            def put() -> httpx.Response:
                with encoded.open() as stream:
                    return self._plain.put(str(job.upload_url), content=stream, headers={
                        "Content-Type": kind, "Content-Length": str(size)})

            resp = self._call(put, until)
            if resp is None or not resp.is_success:
                why = f"HTTP {resp.status_code}" if resp is not None else "no answer"
                return self._fail_result(job, f"upload to resultUploadUrl failed: {why}")
        finally:
            encoded.close()
        resp = self._call(lambda: self._final_post(job, path, json={
            "leaseToken": token, "resultUploaded": True, "resultType": kind}), until)
        return self._completed(job, resp)

    def _completed(self, job: _Job, resp: httpx.Response | None) -> str:
        if resp is None:
            return "succeeded, but complete got no answer before the lease ran out"
        if resp.is_success:
            return "succeeded"
        error = _error(resp)
        if resp.status_code in (404, 409):
            job.ctx.cancel()
            return f"result dropped ({error.code})"
        return self._fail_result(job, f"complete refused: {error}")

    def _fail_result(self, job: _Job, message: str) -> str:
        retry = attempt_retry_seconds(job.ctx.attempt, self.retry_base_seconds)
        self._report_fail(job, "result_error", message[:1000], retry, until=lambda: job.ctx.lease_deadline)
        return f"failed (result_error: {message})"

    def _report_fail(self, job: _Job, code: str, message: str, retry_after: float | None, *,
                     until: Callable[[], float], budget: float | None = None) -> bool:
        """POST fail; True when the server took it."""
        if budget is not None:
            end = time.monotonic() + budget
            until = lambda: end  # noqa: E731
        body = {"leaseToken": job.token, "error": {"code": code, "message": message},
                "retryAfterSeconds": None if retry_after is None else math.ceil(retry_after)}
        resp = self._call(lambda: self._final_post(
            job, f"v1/worker/jobs/{quote(job.job_id, safe='')}/fail", json=body,
            timeout=budget or REQUEST_TIMEOUT), until, clock=time.monotonic if budget else None)
        if resp is not None and not resp.is_success and resp.status_code not in (404, 409):
            log.warning("job %s: fail refused: %s", job.job_id, _error(resp))
        return resp is not None and resp.is_success

    def _final_post(self, job: _Job, path: str, **kwargs: Any) -> httpx.Response:
        """A complete or fail request. Heartbeats go on while it is retried (they keep the
        lease), but never overlap it, and none follows once it got its answer."""
        with job.heartbeat_lock:
            resp = self._http.post(path, **kwargs)
            if resp.status_code < 500 and resp.status_code != 429:
                job.stop_heartbeat.set()
            return resp

    # -- heartbeats ------------------------------------------------------------------------------
    def _heartbeat_loop(self, job: _Job) -> None:
        """Every lease/3 (sooner when there is progress to show, at most every
        REPORT_SPACING_SECONDS); after a failed one, again with backoff while the lease holds."""
        interval = self.heartbeat_seconds or max(1.0, job.lease_seconds / 3.0)
        spacing = min(interval, REPORT_SPACING_SECONDS)
        last = time.monotonic()
        failures = 0
        while True:
            due = last + (interval if not failures else min(interval, retry_delay(failures, cap=10)))
            woke = job.wake.wait(max(0.0, due - time.monotonic()))
            if job.stop_heartbeat.is_set():
                return
            if woke:
                job.wake.clear()
                early = last + spacing - time.monotonic()
                if early > 0 and job.stop_heartbeat.wait(early):
                    return
            with job.heartbeat_lock:
                if job.stop_heartbeat.is_set():
                    return
                ok = self._heartbeat(job)
            last = time.monotonic()
            failures = 0 if ok else failures + 1
            if job.ctx.canceled:
                return
            if job.ctx.more_pending():
                job.wake.set()

    def _heartbeat(self, job: _Job) -> bool:
        """One heartbeat (caller holds job.heartbeat_lock); False when it got no answer."""
        ctx = job.ctx
        report = ctx.take_report()
        sent_at = self._monotonic()
        try:
            resp = self._http.post(f"v1/worker/jobs/{quote(job.job_id, safe='')}/heartbeat",
                                   json={"leaseToken": job.token, **report}, timeout=HEARTBEAT_TIMEOUT)
        except httpx.TransportError as exc:
            ctx.restore(report)
            ctx.heartbeat_failed()
            log.warning("job %s heartbeat failed (%s)", job.job_id, _describe(exc))
            return False
        if resp.status_code == 200:
            try:
                answer = resp.json()
            except ValueError:
                answer = {}
            lease = _lease_seconds(answer.get("leaseExpiresAt"), resp.headers.get("date"),
                                   default=job.lease_seconds)
            ctx.heartbeat_ok(sent_at + lease)
            if answer.get("resultUploadUrl"):
                job.upload_url = answer["resultUploadUrl"]  # a fresher presigned URL
            if answer.get("canceled"):
                log.info("job %s canceled by the client", job.job_id)
                ctx.cancel()
            return True
        if resp.status_code in (404, 409):
            log.info("job %s: %s: stopping it", job.job_id, _error(resp).code)
            ctx.cancel()
            return True
        if resp.status_code == 429 or resp.status_code >= 500:
            ctx.restore(report)
            ctx.heartbeat_failed()
            log.warning("job %s heartbeat answered %s", job.job_id, resp.status_code)
            return False
        log.warning("job %s heartbeat refused: %s (its report is dropped)", job.job_id, _error(resp))
        return True

    # -- HTTP with retries -------------------------------------------------------------------------
    def _call(self, send: Callable[[], httpx.Response], until: Callable[[], float],
              clock: Callable[[], float] | None = None) -> httpx.Response | None:
        """`send()` until it gets an answer that is not 5xx/429, retrying with backoff while
        clock() < until(); the last answer, or None when none came."""
        clock = clock or self._monotonic
        failures = 0
        last: httpx.Response | None = None
        while True:
            try:
                last = send()
                if last.status_code < 500 and last.status_code != 429:
                    return last
                why = f"HTTP {last.status_code}"
                wait = parse_retry_after(last.headers.get("retry-after"))
            except (httpx.TransportError, OSError) as exc:
                why, wait = _describe(exc), None
            failures += 1
            delay = wait if wait is not None else retry_delay(failures, cap=15.0)
            if clock() + delay >= until():
                log.warning("giving up after %d tries: %s", failures, why)
                return last
            log.warning("request failed (%s): retrying in %.1fs", why, delay)
            self._sleep_retry(delay)

    def _sleep_retry(self, seconds: float) -> None:
        # Retries go on during the shutdown: they carry results. Injected sleeps are used
        # as they are (tests); the default one must not return early when stopping.
        if self._sleep_injected:
            self._sleep(seconds)
        else:
            time.sleep(seconds)

    def _fetch_content(self, url: str) -> tuple[bytes, str | None]:
        resp = self._call(lambda: self._plain.get(url), until=lambda: self._monotonic() + 60.0)
        if resp is None:
            raise ConnectionFailed("cannot download the job's content")
        if not resp.is_success:
            raise _error(resp)
        return resp.content, resp.headers.get("content-type")


# -- helpers ------------------------------------------------------------------------------------------

def _error(resp: httpx.Response) -> JobgateError:
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    return error_for(resp.status_code, body, dict(resp.headers))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _json_str(text: str) -> bytes:
    import json

    return json.dumps(text).encode()


def _lease_seconds(expires_at: Any, date_header: str | None,
                   default: float = DEFAULT_LEASE_SECONDS) -> float:
    """The lease's length: `leaseExpiresAt` minus the server's own `Date` (so the two
    clocks need not agree), less a second for that header's rounding."""
    return min(3600.0, max(3.0, _seconds_left(expires_at, date_header, default + 1.0) - 1.0))


def _seconds_left(at: Any, date_header: str | None, default: float) -> float:
    """Seconds from the server's `Date` to the timestamp `at` (ISO 8601), or `default`."""
    if not isinstance(at, str):
        return default
    try:
        end = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
        now = parsedate_to_datetime(date_header).timestamp() if date_header else time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return default
    return max(0.0, end - now)
