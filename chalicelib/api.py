"""What the job routes do, independent of Chalice: validate, write, enqueue, read back.
Routes in app.py only translate HTTP to these calls and their answers back to HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from . import services, telemetry
from .blobs import content_key
from .capacity import holds_place
from .errors import ApiError, bad_request, conflict, not_found, validation_error
from .ids import is_job_id, new_job_id
from .jobs import CANCELED, QUEUED, Job, Resource, presign_seconds
from .leases import make_claimable
from .limits import MAX_SUBMITTED_ITEM, item_size, storable_number
from .ports import BlobPort, Conflict, JobStorePort, QueuePort, RunIdTaken, Unavailable
from .settings import Settings
from .store import apply, job_to_item
from .tenants import Tenant
from .urls import check_callback_url
from .views import JobView

if TYPE_CHECKING:  # built by the submit routes, on their first call (not at cold start)
    from .models import SubmitRequest

INLINE_CONTENT_LIMIT = 64 * 1024
REQUEUE_AFTER_SECONDS = 30.0


@dataclass
class Submitted:
    job: Job
    replayed: bool


def unavailable(message: str, retry_after: int = 5) -> ApiError:
    return ApiError(503, "unavailable", message, headers={"Retry-After": str(retry_after)})


class JobsApi:
    def __init__(
        self, store: JobStorePort, blobs: BlobPort, dispatcher: QueuePort, settings: Settings,
        view: JobView, cursor_secret: bytes | Callable[[], bytes],
        clock: Callable[[], float] = time.time,
    ):
        self.store, self.blobs, self.dispatcher, self.settings = store, blobs, dispatcher, settings
        self.view = view
        self.active = ActiveJobs(store, clock)
        self.sleep, self.monotonic = time.sleep, time.monotonic  # replaceable in tests
        self._secret = cursor_secret
        self.clock = clock

    # -- submit ------------------------------------------------------------------------
    def parse_request(self, data: dict[str, Any]) -> SubmitRequest:
        from .models import SubmitRequest

        try:
            return SubmitRequest.model_validate(data)
        except ValidationError as exc:
            raise validation_error(exc.errors(include_url=False, include_context=False),
                                   "the request does not match the job schema") from None

    def service_for(self, name: str) -> services.Service:
        service = services.get(name)
        if service is None:
            raise ApiError(404, "unknown_service", f"no service named {name!r}")
        if name in self.settings.disabled_services:
            raise conflict("service_disabled", f"service {name!r} is disabled")
        return service

    def validate_input(self, service: services.Service, data: Any, where: str = "input",
                       variables: dict[str, str] | None = None) -> None:
        checks = [(service.input_model, data or {}, where, "input")]
        if service.variables_model is not None and variables is not None:
            checks.append((service.variables_model, variables, "variables", "variables"))
        for model, value, loc, what in checks:
            if model is None:
                continue
            try:
                model.model_validate(value)
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_context=False)
                for e in errors:
                    e["loc"] = (loc, *e.get("loc", ()))
                raise validation_error(
                    errors, f"{what} does not match {service.name}'s model") from None

    def submit(
        self, tenant: Tenant, req: SubmitRequest, base: str, content: bytes | None = None,
        content_type: str | None = None,
    ) -> Submitted:
        service = self.service_for(req.service)
        _check_storable(_request_values(req))  # before anything below walks the values
        self.validate_input(service, req.input, variables=req.variables)
        if service.content_required and not content:
            raise validation_error([{"loc": ("content",), "msg": "a document is required",
                                     "type": "missing"}],
                                   f"POST the document to /v1/services/{service.name}/jobs")
        for i, step in enumerate(req.chain):
            self.validate_input(self.service_for(step.service), step.input, f"chain[{i}].input",
                                variables=step.variables)
        if req.callback_url:
            problem = check_callback_url(
                req.callback_url, self.settings.allow_private_callbacks,
                forbidden_targets=self.settings.forbidden_callback_targets)
            if problem:
                raise validation_error([{"loc": ("callbackUrl",), "msg": problem,
                                         "type": "callback_url"}], problem)
        request_hash = _request_hash(req, content)
        if req.run_id:
            owner = self.store.run_id_owner(tenant.name, req.run_id)
            if owner:
                return self._replay(tenant, req.run_id, owner[0], owner[1], request_hash)
        now = self.clock()
        job = Job(
            tenant=tenant.name, job_id=new_job_id(now), service=service.name, status=QUEUED,
            created_at=now, expires_at=now + self.settings.job_ttl_seconds, run_id=req.run_id,
            input=req.input, variables=dict(req.variables), log_level=req.log_level,
            max_attempts=service.max_attempts or self.settings.job_max_attempts,
            callback_url=req.callback_url,
            chain=[s.model_dump(by_alias=True, exclude_none=True) for s in req.chain],
            request_hash=request_hash, content_type=content_type, base_url=base,
        )
        make_claimable(job, service.runs_on, now)  # a worker service's job waits for a claim
        if content is not None and len(content) <= INLINE_CONTENT_LIMIT:
            job.content_inline = content
        _check_item_size(job)
        self._check_capacity(tenant, job.job_id)
        try:
            if content is not None:
                if job.content_inline is None:
                    job.content_key = content_key(tenant.name, job.job_id)
                    self.blobs.put(job.content_key, content,
                                   content_type or "application/octet-stream")
            self.store.create(job)
        except RunIdTaken as taken:
            self._give_back(job.job_id)
            self._drop_content(job)
            return self._replay(tenant, req.run_id or "", taken.job_id, taken.request_hash,
                                request_hash)
        except Unavailable as exc:
            self._give_back(job.job_id)
            self._drop_content(job)
            raise unavailable(f"cannot store the job now ({exc.code})") from exc
        try:
            if service.runs_on != "worker":  # workers claim from the claim index instead
                self.dispatcher.send_job(tenant.name, job.job_id, job.service)
        except Unavailable as exc:
            self._give_back(job.job_id)
            self._forget(job)
            raise unavailable(f"cannot queue the job now ({exc.code})") from exc
        telemetry.metric("JobsSubmitted", JobService=service.name)
        return Submitted(job, replayed=False)

    def _check_capacity(self, tenant: Tenant, job_id: str) -> None:
        """429 above the tenant's active jobs (a hint, cached a few seconds per container),
        then 503 unless a place among the jobs waiting is reserved (chalicelib/capacity.py:
        a conditional counter, exact under a burst). The caller gives the place back when
        the submit fails after this."""
        limit = tenant.max_active or self.settings.tenant_max_active
        try:
            active = self.active.count(tenant.name, limit + 1)
        except Unavailable:
            active = 0  # a hint; the reservation below still holds the queue's bound
        if active >= limit:
            raise ApiError(429, "quota_exceeded",
                           f"{active} jobs queued or running; this tenant may have {limit}",
                           headers={"Retry-After": "10"})
        capacity = self.dispatcher.capacity
        if capacity is not None:
            try:
                taken, counted = capacity.reserve(job_id, self.settings.max_queue_depth)
            except Unavailable as exc:
                raise unavailable(f"cannot queue the job now ({exc.code})") from exc
            if not taken:
                try:
                    capacity.repair(counted, self.dispatcher.messages_held(),
                                    self.settings.max_queue_depth)
                except Unavailable:
                    pass  # repaired on a later refusal
                raise unavailable(f"{counted} jobs are waiting; try again later", retry_after=30)
        self.active.added(tenant.name)

    def _give_back(self, job_id: str) -> None:
        """A job that held a place and left the queue before it started (its submit failed
        after reserving, or it was canceled while queued): the place is free again."""
        if self.dispatcher.capacity is None:
            return
        try:
            self.dispatcher.capacity.release(job_id, self.settings.max_queue_depth)
        except Unavailable:
            pass  # a lost place; `repair` finds it once submits are refused

    def _forget(self, job: Job) -> None:
        try:
            self.store.forget(job)
        except Unavailable:
            return  # a queued job without a message is re-queued on its next replay
        self._drop_content(job)

    def _drop_content(self, job: Job) -> None:
        """An uploaded document whose job was never accepted (the lifecycle rule is the
        backstop if this delete fails too)."""
        try:
            self.blobs.delete(job.content_key)
        except Unavailable:
            pass

    def _replay(self, tenant: Tenant, run_id: str, job_id: str, stored_hash: str,
                request_hash: str) -> Submitted:
        if not hmac.compare_digest(stored_hash, request_hash):
            raise conflict("run_id_conflict",
                           f"runId {run_id!r} was used for a different request")
        now = self.clock()
        job = self.store.get(tenant.name, job_id, now)
        if job is None:
            raise conflict("run_id_conflict", f"runId {run_id!r} belongs to a deleted job")
        if job.status == QUEUED and now - job.created_at > REQUEUE_AFTER_SECONDS:
            # Its first message may have been lost with a crashed submit; a second one is
            # harmless (the worker's lease makes duplicates no-ops).
            try:
                self.dispatcher.send_job(tenant.name, job_id, job.service)
            except Unavailable:
                pass
        return Submitted(job, replayed=True)

    def wait_for_end(self, job: Job, seconds: float) -> Job:
        """Prefer: wait=N. Re-reads with a growing pause (0.1 s doubling to 1 s): about a
        dozen reads for 20 s, never a tight loop."""
        deadline = self.monotonic() + seconds
        pause = 0.1
        while not job.terminal:
            left = deadline - self.monotonic()
            if left <= 0:
                break
            self.sleep(min(pause, left))
            pause = min(1.0, pause * 2)
            job = self.store.get(job.tenant, job.job_id, self.clock()) or job
        return job

    # -- reads -------------------------------------------------------------------------
    def get(self, tenant: Tenant, job_id: str) -> Job:
        if not is_job_id(job_id):
            raise not_found()
        job = self.store.get(tenant.name, job_id, self.clock())
        if job is None:
            raise not_found()
        return job

    def resource(self, job: Job, base: str) -> Resource:
        return self.view.resource(job, base)

    def list(self, tenant: Tenant, params: dict[str, str]) -> tuple[list[Job], str | None]:
        status, service = params.get("status") or None, params.get("service") or None
        if status and status not in ("queued", "running", "succeeded", "failed", "canceled"):
            raise bad_request(f"unknown status {status[:100]!r}", "invalid_parameter")
        if service and services.get(service) is None:
            raise bad_request(f"unknown service {service[:100]!r}", "invalid_parameter")
        try:
            limit = int(params.get("limit") or 20)
        except ValueError:
            raise bad_request("limit must be an integer 1-100", "invalid_parameter") from None
        if not 1 <= limit <= 100:
            raise bad_request("limit must be an integer 1-100", "invalid_parameter")
        after = self._read_cursor(params["cursor"], tenant.name, status, service) \
            if params.get("cursor") else None
        page = self.store.list(tenant.name, self.clock(), status=status, service=service,
                               limit=limit, after=after)
        cursor = self._make_cursor(page.last_job_id, tenant.name, status, service) \
            if page.last_job_id else None
        return page.jobs, cursor

    def _cursor_signature(self, payload: bytes, tenant: str) -> bytes:
        """Over the tenant and the payload (job ID and filters): a cursor is good for one
        tenant's one query only."""
        try:
            key = self._secret() if callable(self._secret) else self._secret
        except Unavailable as exc:
            raise unavailable(f"listing cursors are unavailable ({exc.code})") from None
        message = json.dumps(["jobgate-cursor/1", tenant]).encode() + b"\n" + payload
        return hmac.new(key, message, hashlib.sha256).digest()[:16]

    def _make_cursor(self, job_id: str, tenant: str, status: str | None,
                     service: str | None) -> str:
        payload = json.dumps([job_id, status, service], separators=(",", ":")).encode()
        sig = self._cursor_signature(payload, tenant)
        return base64.urlsafe_b64encode(sig + payload).decode().rstrip("=")

    def _read_cursor(self, cursor: str, tenant: str, status: str | None,
                     service: str | None) -> str:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            sig, payload = raw[:16], raw[16:]
            if not hmac.compare_digest(sig, self._cursor_signature(payload, tenant)):
                raise ValueError("signature")  # forged, tampered, or another tenant's
            job_id, c_status, c_service = json.loads(payload)
            if not isinstance(job_id, str):
                raise TypeError("job id")
        except (ValueError, TypeError):
            raise bad_request("invalid cursor", "invalid_cursor") from None
        if (c_status, c_service) != (status, service) or not is_job_id(job_id):
            raise bad_request("the cursor belongs to another query", "invalid_cursor")
        return job_id

    # -- changes -----------------------------------------------------------------------
    def cancel(self, tenant: Tenant, job_id: str) -> tuple[Job, bool]:
        """Returns the canceled job and whether it was running (202) or queued (200)."""
        job = self.get(tenant, job_id)
        now = self.clock()
        values: dict[str, Any] = {}
        if job.callback_url:
            ended = apply(job, {"status": CANCELED, "completedAt": now, "callbackState": "pending"})
            values = {"callbackState": "pending", "callbackEvent": self.view.event(ended)}
        try:
            before = self.store.cancel(tenant.name, job_id, now, values)
        except Conflict as exc:
            if exc.job is None or exc.job.expired(now):
                raise not_found() from None
            raise conflict("job_finished", f"job is already {exc.job.status}") from None
        telemetry.metric("JobsCanceled", JobService=job.service)
        if before.status == QUEUED and holds_place(before):
            self._give_back(job_id)
        return apply(before, {"status": CANCELED, "completedAt": now, **values}), \
            before.status != QUEUED

    def redeliver(self, tenant: Tenant, job_id: str) -> tuple[Job, str]:
        """Send the job's webhook again now (POST /deliveries): (the job, now pending; the
        webhook's state before). At most one schedule per job: while one is pending (the
        first one or a redelivery) another answers 409; the conditional switch to
        `pending` decides between concurrent requests."""
        job = self.get(tenant, job_id)
        if not job.callback_url:
            raise conflict("no_callback", "the job has no callbackUrl")
        if not job.terminal or not job.callback_event:
            raise conflict("job_not_finished", f"job is {job.status}; its webhook is not due yet")
        pending = conflict("delivery_pending",
                           "a delivery of this webhook is pending; wait until it ends")
        if job.callback_state == "pending":
            raise pending
        try:
            return self.store.set_callback_state(tenant.name, job_id, "pending",
                                                 job.callback_state), job.callback_state
        except Conflict:
            raise pending from None

    def delete(self, tenant: Tenant, job_id: str) -> None:
        self.get(tenant, job_id)
        try:
            job = self.store.delete(tenant.name, job_id)
        except Conflict as exc:
            if exc.job is None:
                raise not_found() from None
            raise conflict("job_not_finished",
                           f"job is {exc.job.status}; cancel it first") from None
        self.blobs.delete(job.result_key, job.log_key, job.content_key)

    def result_location(self, tenant: Tenant, job_id: str) -> str:
        job = self.get(tenant, job_id)
        if not job.result_key:
            raise ApiError(404, "no_result", f"job {job_id} has no result (status {job.status})")
        now = self.clock()
        if not job.result_valid(now):
            raise ApiError(410, "result_expired", "the result is no longer available")
        seconds = presign_seconds(job.valid_until or now, now, self.settings.presign_max_seconds)
        return self.blobs.presign(job.result_key, seconds)

    def log(self, tenant: Tenant, job_id: str) -> tuple[str | None, str]:
        """(presigned URL for a large log or None, inline text)."""
        job = self.get(tenant, job_id)
        if job.log_key:
            data = None
            if job.log_size <= 1024 * 1024:
                data = self.blobs.get(job.log_key)
            if data is None:
                return self.blobs.presign(job.log_key, self.settings.presign_max_seconds), ""
            return None, data.decode("utf-8", "replace")
        return None, job.log_inline or ""


class ActiveJobs:
    """A tenant's queued + running jobs, counted on the status index at most every
    `ttl` seconds per container, plus the submits this container made since."""

    def __init__(self, store: JobStorePort, clock: Callable[[], float], ttl: float = 5.0):
        self._store, self._clock, self._ttl = store, clock, ttl
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._reading: dict[str, threading.Lock] = {}

    def count(self, tenant: str, cap: int) -> int:
        """One read per tenant and `ttl`, however many requests run at once: one of them
        reads (the figure is stamped when the read ends); the others use the stale figure
        meanwhile, or wait for the first read when there is none yet."""
        hit = self._seen.get(tenant)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        with self._lock:
            gate = self._reading.setdefault(tenant, threading.Lock())
        if hit is not None and not gate.acquire(blocking=False):
            return hit[1]
        if hit is None:
            gate.acquire()
        try:
            hit = self._seen.get(tenant)
            if hit is None or self._clock() - hit[0] >= self._ttl:
                count = self._store.count_active(tenant, cap, self._clock())
                hit = (self._clock(), count)
                self._seen[tenant] = hit
            return hit[1]
        finally:
            gate.release()

    def added(self, tenant: str) -> None:
        if tenant in self._seen:
            at, n = self._seen[tenant]
            self._seen[tenant] = (at, n + 1)


MAX_DEPTH = 30  # DynamoDB nests documents at most 32 levels (the item and input use 2)


def _request_values(req: SubmitRequest) -> dict[str, Any]:
    """Every caller-supplied value the job item will hold, as stored (item attribute names)."""
    return {"input": req.input, "variables": req.variables, "runId": req.run_id,
            "callbackUrl": req.callback_url,
            "chain": [{"service": s.service, "input": s.input, "variables": s.variables}
                      for s in req.chain]}


def _check_storable(values: dict[str, Any]) -> None:
    """Reject, as 422, values DynamoDB cannot hold; they would otherwise surface as a 503.
    Iterative, so no nesting depth can exhaust the stack before the depth rule answers."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(v, (k,)) for k, v in values.items()]
    while stack:
        value, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            raise _unstorable(loc[:MAX_DEPTH + 1], "nested too deeply")
        if isinstance(value, float) and not math.isfinite(value):
            raise _unstorable(loc, "NaN and Infinity cannot be stored")
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and not storable_number(value):
            raise _unstorable(loc, "numbers have at most 38 significant digits and a "
                                   "magnitude between 1e-130 and 1e126")
        if isinstance(value, str) and not _encodable(value):
            raise _unstorable(loc, "not valid Unicode (lone surrogate)")
        if isinstance(value, dict):
            for k, v in value.items():
                if not k:
                    raise _unstorable(loc, "object keys must not be empty")
                if not _encodable(k):
                    raise _unstorable(loc, "object keys must be valid Unicode (lone surrogate)")
                stack.append((v, (*loc, k)))
        elif isinstance(value, list):
            stack.extend((v, (*loc, i)) for i, v in enumerate(value))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_item_size(job: Job) -> None:
    """413 when the job item, as it will be written, leaves too little room for what its
    lifecycle adds later (limits.LIFECYCLE_RESERVE): such a job could be accepted and then
    be neither run nor canceled."""
    size = item_size(job_to_item(job))
    if size > MAX_SUBMITTED_ITEM:
        raise ApiError(413, "payload_too_large",
                       f"the job (input, variables, chain, inline document) takes {size} bytes; "
                       f"at most {MAX_SUBMITTED_ITEM} (send large documents to "
                       "/v1/services/{service}/jobs, where documents over "
                       f"{INLINE_CONTENT_LIMIT} bytes are kept outside the job)")


def _unstorable(loc: tuple[Any, ...], msg: str) -> ApiError:
    return validation_error([{"loc": loc, "msg": msg, "type": "unstorable"}],
                            "the request cannot be stored")


def _request_hash(req: SubmitRequest, content: bytes | None) -> str:
    canonical = json.dumps(req.model_dump(mode="json", exclude={"run_id"}), sort_keys=True,
                           separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode())
    if content is not None:
        digest.update(b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()

