"""What the worker routes do, independent of Chalice: claim (long poll), heartbeat,
complete, fail, and the watchdog that notices a lapsed lease when no worker comes back.

The lifecycle is the Lambda jobs' one: the webhook event is rendered with the terminal
write (JobView.with_event) and what follows an end (webhook, next job of a chain) is
after_end.AfterEnd. Who notices a lapsed lease: any claim of that service (the claim index
sorts running jobs by their lease's end, so a lapsed one is due at once), and, when no
worker polls, the job's watchdog message on the jobs queue, which the claim sends and the
job Lambda re-hides (ChangeMessageVisibility) until the lease or the run deadline ends."""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import leases, services, telemetry
from .errors import ApiError, bad_request, conflict, not_found
from .ids import is_job_id, new_job_id
from .jobs import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job, iso
from .leases import LOG_FULL, LOG_ITEM_BYTES, fitting
from .messages import MAX_VISIBILITY, Malformed, Retry, parse_job_message
from .objectkeys import content_key, log_key, result_key
from .ports import Conflict

if TYPE_CHECKING:
    from .runtime import Runtime
    from .settings import Settings
    from .workerkeys import WorkerKey

log = logging.getLogger("jobgate.workers")
MAX_WAIT = 20
POLL_INTERVAL = 0.5  # a job submitted during a long poll is handed over within about this
CANDIDATES = 5
MAX_INLINE_RESULT = 256 * 1024
MAX_LINES_PER_CALL = 200
MAX_LINE = 1000
MAX_VARIABLES = 50
MAX_VARIABLE = 256  # bytes of one status variable's value (UTF-8)
MAX_MESSAGE = 1000  # bytes of a progress message or error message (UTF-8)
WAITING_METRIC = "WorkerJobsWaiting"  # infra/worker-fargate.yaml scales on it
WAITING_CAP = 1000  # jobs counted at most (one Query page): the scaling steps end at 40
SHUTDOWN = "worker_shutdown"  # a worker stopped under the job: the attempt is given back


def lease_lost(message: str = "the lease lapsed or was taken over") -> ApiError:
    return conflict("lease_lost", message)


class WorkerApi:
    def __init__(self, rt: Runtime, clock: Callable[[], float] = time.time):
        self.rt = rt
        self.keys, self.leases = rt.worker_keys, rt.leases
        self.clock, self.sleep = clock, time.sleep  # replaceable in tests

    @property
    def settings(self) -> Settings:
        return self.rt.settings  # read each time: tests swap the runtime's settings

    def authenticate(self, authorization: str | None) -> WorkerKey:
        return self.keys.authenticate(authorization)

    # -- claim -------------------------------------------------------------------------
    def claim(self, key: WorkerKey, body: dict[str, Any]) -> dict[str, Any] | None:
        """The claim's body, or None when no job came within waitSeconds."""
        names = self._services(key, body.get("services"))
        wait = body.get("waitSeconds", 0)
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait <= MAX_WAIT:
            raise bad_request(f"waitSeconds must be a number 0-{MAX_WAIT}", "invalid_parameter")
        started = self.clock()
        while True:
            claimed = self._claim_once(names, key)
            if claimed is not None:
                return claimed
            left = wait - (self.clock() - started)
            if left <= 0:
                return None
            self.sleep(min(POLL_INTERVAL, left))

    def _services(self, key: WorkerKey, raw: Any) -> list[str]:
        if raw is None:
            raw = list(key.services)
        if not isinstance(raw, list) or not raw or len(raw) > 20 \
                or not all(isinstance(s, str) and s for s in raw):
            raise bad_request("services must be a list of 1-20 service names", "invalid_parameter")
        for name in raw:
            if not key.allows(name):
                raise ApiError(401, "unauthorized",
                               f"this worker key may not claim jobs of {name!r}",
                               headers={"WWW-Authenticate": "Bearer"})
            service = services.get(name)
            if service is None or service.runs_on != "worker":
                raise ApiError(404, "unknown_service", f"no worker service named {name!r}")
        return list(dict.fromkeys(raw))

    def _claim_once(self, names: list[str], key: WorkerKey) -> dict[str, Any] | None:
        start = random.randrange(len(names))  # no service starves another
        for name in names[start:] + names[:start]:
            now = self.clock()
            for tenant, job_id in self.leases.candidates(leases.claim_key(name), now, CANDIDATES):
                job = self._take(name, tenant, job_id, now, key)
                if job is not None:
                    return self._claim_body(job)
        return None

    def _take(self, name: str, tenant: str, job_id: str, now: float, key: WorkerKey
              ) -> Job | None:
        service = services.get(name)
        assert service is not None
        token = leases.new_token(tenant)
        deadline = leases.run_deadline(now, service.timeout_seconds,
                                       self.settings.job_max_runtime_seconds)
        until = leases.lease_end(now, self.settings.job_lease_seconds, deadline)
        for _ in range(2):  # a lapsed lease is first returned to the queue, then claimed
            try:
                job = self.leases.claim(tenant, job_id, leases.claim_key(name), token, now,
                                        until, deadline)
            except Conflict as lost:
                current = lost.job
                if current is None or current.expired(now):
                    return None
                if current.terminal:
                    self.leases.drop_claim(tenant, job_id)
                    return None
                if leases.lapsed(current, now) and self.expire(current, now) == QUEUED:
                    continue
                if current.status == QUEUED and current.attempts >= current.max_attempts:
                    self.rt.worker.fail_abandoned(current, "attempts_exhausted",
                                                  "no attempts left")
                return None
            telemetry.bind(tenant=tenant, jobId=job_id, service=name, attempt=job.attempts)
            if job.attempts == 1:
                telemetry.metric("QueueWait", round(now - job.created_at, 3), "Seconds")
            self._watch_later(job, min(leases.SQS_MAX_DELAY, self.settings.job_lease_seconds + 1))
            return job
        return None

    def _claim_body(self, job: Job) -> dict[str, Any]:
        token = job.lease_token or ""
        body: dict[str, Any] = {
            "jobId": job.job_id, "tenant": job.tenant, "service": job.service,
            "input": job.input if job.input is not None else {}, "variables": job.variables,
            "logLevel": job.log_level, "attempt": job.attempts, "maxAttempts": job.max_attempts,
            "leaseToken": token, "leaseExpiresAt": iso(job.lease_until),
            "deadlineAt": iso(job.run_deadline),
            "resultUploadUrl": self._upload_url(job, token),
        }
        key = job.content_key
        if key is None and job.content_inline is not None:
            # Small documents live in the item: hand them over through S3 all the same.
            key = content_key(job.tenant, job.job_id)
            self.rt.blobs.put(key, job.content_inline, job.content_type or "application/octet-stream")
            self.leases.set_content_key(job.tenant, job.job_id, key)
        if key is not None:
            body["contentUrl"] = self.rt.blobs.presign(key, self._presign_seconds(job))
            body["contentType"] = job.content_type
        return body

    def _presign_seconds(self, job: Job) -> int:
        left = (job.run_deadline or self.clock()) - self.clock()
        return max(60, min(self.settings.presign_max_seconds, math.ceil(left)))

    def _upload_url(self, job: Job, token: str) -> str:
        return self.rt.blobs.presign_put(result_key(job.tenant, job.job_id, token),
                                         self._presign_seconds(job))

    # -- heartbeat ---------------------------------------------------------------------
    def heartbeat(self, key: WorkerKey, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        tenant, token = self._lease(job_id, body)
        values: dict[str, Any] = {}
        progress = body.get("progress")
        if progress is not None:
            if not isinstance(progress, dict):
                raise bad_request("progress must be an object {percent, message}")
            percent = progress.get("percent")
            if percent is not None:
                if isinstance(percent, bool) or not isinstance(percent, int | float) \
                        or not math.isfinite(percent):
                    raise bad_request("progress.percent must be a number 0-100")
                values["progressPercent"] = round(float(min(100.0, max(0.0, percent))), 2)
            message = progress.get("message")
            if message is not None:
                values["progressMessage"] = _cut(str(message), MAX_MESSAGE)
        variables = body.get("variables") or {}
        if not isinstance(variables, dict) or len(variables) > MAX_VARIABLES or not all(
                isinstance(k, str) and 0 < len(k) <= 64 for k in variables):
            raise bad_request(f"variables must be an object of at most {MAX_VARIABLES} names")
        # Only the service's declared status variables are kept (the job resource shows no
        # other), each value cut to MAX_VARIABLE bytes: the item's room for them is fixed.
        declared = _declared_variables(key)
        variables = {k: _cut(v if isinstance(v, str) else json.dumps(v), MAX_VARIABLE)
                     for k, v in variables.items() if k in declared}
        lines = _lines(body.get("log"))
        now = self.clock()
        until = now + self.settings.job_lease_seconds
        check_room = True
        for _ in range(4):
            try:
                job = self.leases.heartbeat(tenant, job_id, token, now, until, values,
                                            variables, lines, key.services, check_room)
                break
            except Conflict as lost:
                try:
                    current = self._refused(lost.job, key, token, now)
                except Canceled:
                    return {"leaseExpiresAt": None, "canceled": True}
                if current.run_deadline is not None and current.run_deadline < until:
                    until = current.run_deadline  # the lease never outlives the run deadline
                elif lines and check_room:
                    # The job's log is full: keep the lease, drop the lines, say so once.
                    full = LOG_FULL.format(LOG_ITEM_BYTES)
                    lines = [] if current.log_lines[-1:] == [full] else \
                        [*fitting(current.log_lines, lines), full]
                    check_room = False  # the lines above fit, by the item just read
                elif lines:
                    lines = []
                else:
                    raise lease_lost() from None
        else:
            raise lease_lost()
        return {"leaseExpiresAt": iso(job.lease_until), "canceled": False,
                "resultUploadUrl": self._upload_url(job, token)}

    def _refused(self, job: Job | None, key: WorkerKey, token: str, now: float) -> Job:
        """Why a lease write lost: 404 (not this key's job), 200 canceled, or 409; returns
        the job when this worker still holds it (the write failed on something else)."""
        if job is None or job.expired(now) or not key.allows(job.service):
            raise not_found()
        if job.status == CANCELED:
            raise Canceled()
        if job.status == RUNNING and job.lease_token == token and (job.lease_until or 0) >= now:
            return job
        raise lease_lost()

    # -- complete / fail ---------------------------------------------------------------
    def complete(self, key: WorkerKey, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        tenant, token = self._lease(job_id, body)
        now = self.clock()
        job = self._held(tenant, job_id, token, key, now)
        service = services.get(job.service)
        rkey = result_key(tenant, job_id, token)
        if body.get("resultUploaded") is True:
            head = self.rt.blobs.head(rkey)
            if head is None:
                raise bad_request("resultUploaded: nothing was uploaded to resultUploadUrl",
                                  "result_missing")
            size = head.size
            kind = body.get("resultType") or head.content_type or "application/octet-stream"
            if not isinstance(kind, str) or len(kind) > 200:
                raise bad_request("resultType must be a media type")
        elif "result" in body:
            data = json.dumps(body["result"], separators=(",", ":")).encode()
            if len(data) > MAX_INLINE_RESULT:
                raise ApiError(413, "payload_too_large",
                               f"an inline result has at most {MAX_INLINE_RESULT} bytes; "
                               "PUT it to resultUploadUrl")
            self.rt.blobs.put(rkey, data, "application/json")
            size, kind = len(data), "application/json"
        else:
            raise bad_request("send result (JSON) or resultUploaded: true")
        ttl = (service.result_ttl_seconds if service else None) or self.settings.result_ttl_seconds
        values = {"resultKey": rkey, "resultType": kind, "resultSize": size,
                  "validUntil": now + ttl, "progressPercent": 100.0, "errorCode": None,
                  "errorMessage": None, "next": new_job_id() if job.chain else None}
        try:
            self._end(job, token, SUCCEEDED, values, _lines(body.get("log")), key, now)
        except ApiError:
            self.rt.blobs.delete(rkey)  # canceled or lost meanwhile: the late result is dropped
            raise
        return {"jobId": job_id, "status": SUCCEEDED}

    def fail(self, key: WorkerKey, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        tenant, token = self._lease(job_id, body)
        error = body.get("error") or {}
        if not isinstance(error, dict):
            raise bad_request("error must be an object {code, message}")
        code = error.get("code") or "handler_error"
        message = error.get("message") or ""
        if not isinstance(code, str) or len(code) > 64 or not isinstance(message, str):
            raise bad_request("error.code is a string of at most 64 characters, error.message a string")
        message = message[:MAX_LINE]
        after = body.get("retryAfterSeconds")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int | float)
                                  or not 0 <= after <= MAX_VISIBILITY):  # NaN fails too
            raise bad_request(f"retryAfterSeconds must be null or a number 0-{MAX_VISIBILITY}")
        after = None if after is None else math.ceil(after)
        lines = _lines(body.get("log"))
        now = self.clock()
        job = self._held(tenant, job_id, token, key, now)
        given_back = code == SHUTDOWN
        while True:
            delay = leases.retry_in(job, code, after, self.settings.job_retry_base_seconds,
                                    given_back)
            if delay is None:
                self._end(job, token, FAILED, {"errorCode": code, "errorMessage": message},
                          lines, key, now)
                return {"jobId": job_id, "status": FAILED}
            try:
                self.leases.release(tenant, job_id, token, now, now + delay, code, message,
                                    lines, key.services, kept=job.log_lines,
                                    given_back=given_back)
            except Conflict as lost:
                job = self._refused(lost.job, key, token, now)
                if not given_back:
                    raise lease_lost() from None
                given_back = False  # still held: the job used up its shutdowns; this one counts
                continue
            return {"jobId": job_id, "status": QUEUED, "retryAt": iso(now + delay)}

    def _lease(self, job_id: str, body: dict[str, Any]) -> tuple[str, str]:
        if not is_job_id(job_id):
            raise not_found()
        token = body.get("leaseToken")
        tenant = leases.token_tenant(token)
        if tenant is None:
            raise bad_request("leaseToken is missing or malformed", "invalid_lease_token")
        return tenant, str(token)

    def _held(self, tenant: str, job_id: str, token: str, key: WorkerKey, now: float) -> Job:
        job = self.rt.store.get(tenant, job_id, now)
        return self._refused(job, key, token, now)

    def _end(self, job: Job, token: str, status: str, values: dict[str, Any], lines: list[str],
             key: WorkerKey | None, now: float, lapsed: bool = False) -> Job:
        """The terminal write (with its webhook event), then what follows the end."""
        values = {**values, **self._final_log(job, token, [*job.log_lines, *lines])}
        values = self.rt.view.with_event(job, status, values, now)
        try:
            ended = self.leases.finish(job.tenant, job.job_id, token, status, values, now,
                                       key.services if key else (), lapsed=lapsed)
        except Conflict as lost:
            self.rt.blobs.delete(values.get("logKey"))
            current = lost.job
            if current is not None and current.terminal:
                self.rt.ends.after_end(current, fresh=False)  # its ender may have died before it
            if key is None:
                raise
            self._refused(current, key, token, now)
            raise lease_lost() from None
        telemetry.metric(f"Jobs{status.title()}", JobService=job.service)
        if status == SUCCEEDED and ended.started_at is not None:
            telemetry.metric("JobDuration", round(now - ended.started_at, 3), "Seconds",
                             JobService=job.service)
        self.rt.ends.after_end(ended)
        return ended

    def _final_log(self, job: Job, token: str, lines: list[str]) -> dict[str, Any]:
        if not lines:
            return {}
        data = ("\n".join(lines) + "\n").encode()
        if len(data) <= self.settings.inline_log_limit:
            return {"logInline": data.decode(), "logSize": len(data)}
        key = log_key(job.tenant, job.job_id, token)
        self.rt.blobs.put(key, data, "text/plain; charset=utf-8")
        return {"logKey": key, "logSize": len(data)}

    # -- lapsed leases -----------------------------------------------------------------
    def expire(self, job: Job, now: float) -> str | None:
        """A running job whose lease lapsed: back to the queue as a failed attempt, or
        failed when it was the last one. Returns the new status (None: someone else acted)."""
        code, message = leases.lapse_error(job)
        token = job.lease_token or ""
        given_back = code == "lease_expired" and leases.unheard(job, self.settings.job_lease_seconds)
        if given_back:
            message = "no heartbeat came under this lease (its claim may never have reached a worker)"
        try:
            while True:
                if job.attempts < job.max_attempts or given_back:
                    try:
                        self.leases.release(job.tenant, job.job_id, token, now, now, code,
                                            message, [], (), lapsed=True, given_back=given_back)
                    except Conflict as lost:
                        current = lost.job
                        if not given_back or current is None or current.lease_token != token \
                                or not leases.lapsed(current, now):
                            raise
                        given_back = False  # its give-backs are used up: this lapse counts
                        continue
                    log.warning("lease lapsed, job queued again",
                                extra={"jobId": job.job_id, "errorCode": code})
                    return QUEUED
                self._end(job, token, FAILED, {"errorCode": code, "errorMessage": message}, [],
                          None, now, lapsed=True)
                return FAILED
        except Conflict:
            return None

    # -- the scaling metric (a scheduled function, every minute) -----------------------
    def publish_waiting(self, stage: str) -> dict[str, int]:
        """Emit Jobgate/WorkerJobsWaiting (dimensions Service, Stage) for every worker
        service: its jobs that a claim would hand out now, counted up to WAITING_CAP with
        one Query on the sparse claim index (no scan). Zero too: scale-in reads it."""
        now = self.clock()
        counts = {}
        for service in services.all_services():
            if service.runs_on != "worker":
                continue
            count = self.leases.count_due(leases.claim_key(service.name), now, WAITING_CAP)
            counts[service.name] = count
            telemetry.gauge(WAITING_METRIC, count, Service=service.name, Stage=stage)
        return counts

    # -- the watchdog (job Lambda) -----------------------------------------------------
    def owns(self, body: str) -> bool:
        """Is this jobs-queue message about a worker service's job? (Then the job Lambda
        only watches it, never runs it.)"""
        try:
            msg = parse_job_message(body)
        except Malformed:
            return False
        name = msg.service
        if name is None:
            job = self.rt.store.get(msg.tenant, msg.job_id, self.clock())
            name = job.service if job else None
        service = services.get(name) if name else None
        return service is not None and service.runs_on == "worker"

    def watch(self, body: str, receive_count: int = 1) -> None:
        """Returns when the message may go; raises Retry to look again later."""
        msg = parse_job_message(body)
        now = self.clock()
        job = self.rt.store.get(msg.tenant, msg.job_id, now)
        if job is None or job.expired(now) or job.status == QUEUED:
            return  # nothing to watch: a claim sends a new watchdog
        if job.terminal:
            self.rt.ends.after_end(job, fresh=False)  # a crash may have come between end and this
            return
        if leases.lapsed(job, now):
            self.expire(job, now)
            return
        delay = leases.watch_delay(job, now, self.settings.job_max_runtime_seconds, MAX_VISIBILITY)
        if receive_count >= leases.REFRESH_AT_RECEIVE:
            # Stay clear of the queue's maxReceiveCount: a fresh message takes over.
            self._watch_later(job, min(leases.SQS_MAX_DELAY, delay))
            return
        raise Retry(delay, "lease held by a worker")

    def _watch_later(self, job: Job, delay: int) -> None:
        try:
            self.rt.dispatcher.send_job(job.tenant, job.job_id, job.service,
                                        delay=max(0, int(delay)))
        except Exception:  # noqa: BLE001  (the next claim still takes a lapsed lease over)
            log.exception("cannot queue the watchdog message", extra={"jobId": job.job_id})


class Canceled(ApiError):
    """The job was canceled: the heartbeat says so (200); a complete or fail is refused."""

    def __init__(self) -> None:
        super().__init__(409, "canceled", "the job was canceled; its result is dropped")


def _declared_variables(key: WorkerKey) -> set[str]:
    """The status variables a job of this key's services may have (the heartbeat does not
    read the job, so: those of every worker service the key serves)."""
    return {name for service in services.all_services()
            if service.runs_on == "worker" and key.allows(service.name)
            for name in service.status_variables}


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8, on a character boundary."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _lines(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_LINES_PER_CALL:
        raise bad_request(f"log must be a list of at most {MAX_LINES_PER_CALL} lines")
    return [str(line)[:MAX_LINE] for line in raw]
