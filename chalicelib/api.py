"""What the job routes do, independent of Chalice: validate, write, enqueue, read back.
Routes in app.py only translate HTTP to these calls and their answers back to HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from . import services, telemetry
from .attributes import apply
from .cursors import Cursors
from .errors import ApiError, bad_request, conflict, not_found, unavailable, validation_error
from .ids import is_job_id, new_job_id
from .jobs import CANCELED, QUEUED, STATUSES, Job, Resource, holds_place, presign_seconds
from .newjob import queued_job
from .objectkeys import content_key
from .ports import BlobPort, Conflict, JobStorePort, QueuePort, RunIdTaken, Unavailable
from .settings import Settings
from .storable import INLINE_CONTENT_LIMIT, check_item_size, check_storable, request_values
from .urls import check_callback_url
from .views import JobView

if TYPE_CHECKING:  # SubmitRequest: built by the submit routes, on their first call
    from .models import SubmitRequest
    from .tenants import Tenant

REQUEUE_AFTER_SECONDS = 30.0


@dataclass
class Submitted:
    job: Job
    replayed: bool


class JobsApi:
    def __init__(
        self, store: JobStorePort, blobs: BlobPort, dispatcher: QueuePort, settings: Settings,
        view: JobView, cursor_secret: bytes | Callable[[], bytes],
        item_size: Callable[[Job], int], clock: Callable[[], float] = time.time,
    ):
        """`item_size`: the bytes the store's record of a job takes (the store's own
        arithmetic: DynamoDB's, limits.item_size of store.job_to_item)."""
        self.store, self.blobs, self.dispatcher, self.settings = store, blobs, dispatcher, settings
        self.view = view
        self.sleep, self.monotonic = time.sleep, time.monotonic  # replaceable in tests
        self.cursors = Cursors(cursor_secret)
        self._item_size = item_size
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
        check_storable(request_values(req))  # before anything below walks the values
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
        job = queued_job(
            tenant.name, new_job_id(now), service.name, service, self.settings, now,
            run_id=req.run_id, input=req.input, variables=dict(req.variables),
            log_level=req.log_level, callback_url=req.callback_url,
            chain=[s.model_dump(by_alias=True, exclude_none=True) for s in req.chain],
            request_hash=request_hash, content_type=content_type, base_url=base,
        )
        if content is not None and len(content) <= INLINE_CONTENT_LIMIT:
            job.content_inline = content
        check_item_size(self._item_size(job))
        self._check_capacity(tenant, job)
        try:
            if content is not None:
                if job.content_inline is None:
                    job.content_key = content_key(tenant.name, job.job_id)
                    self.blobs.put(job.content_key, content,
                                   content_type or "application/octet-stream")
            self.store.create(job)
        except RunIdTaken as taken:
            self._give_back(job.job_id)
            self._free_slot(job)
            self._drop_content(job)
            return self._replay(tenant, req.run_id or "", taken.job_id, taken.request_hash,
                                request_hash)
        except Unavailable as exc:
            self._give_back(job.job_id)
            self._free_slot(job)
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

    def _check_capacity(self, tenant: Tenant, job: Job) -> None:
        """429 unless one of the tenant's active-job slots is taken for the job (a counter,
        exact across containers: chalicelib/capacity.py TenantSlots; its shard is stored
        on the job, whose end gives it back), then 503 unless a place among the jobs waiting
        is reserved (QueueCapacity, exact under a burst). The caller gives both back when
        the submit fails after this."""
        limit = tenant.max_active or self.settings.tenant_max_active
        try:
            slot, counted = self.store.reserve_slot(tenant.name, job.job_id, limit)
            if slot is None and self.store.repair_slots(tenant.name, counted, self.clock()):
                slot, counted = self.store.reserve_slot(tenant.name, job.job_id, limit)
        except Unavailable as exc:
            raise unavailable(f"cannot count this tenant's jobs now ({exc.code})") from exc
        if slot is None:
            raise ApiError(429, "quota_exceeded",
                           f"{counted} jobs queued or running; this tenant may have {limit}",
                           headers={"Retry-After": "10"})
        job.slot = slot
        capacity = self.dispatcher.capacity
        if capacity is not None:
            try:
                taken, counted = capacity.reserve(job.job_id, self.settings.max_queue_depth)
            except Unavailable as exc:
                self._free_slot(job)
                raise unavailable(f"cannot queue the job now ({exc.code})") from exc
            if not taken:
                self._free_slot(job)
                try:
                    capacity.repair(counted, self.dispatcher.messages_held(),
                                    self.settings.max_queue_depth)
                except Unavailable:
                    pass  # repaired on a later refusal
                raise unavailable(f"{counted} jobs are waiting; try again later", retry_after=30)

    def _give_back(self, job_id: str) -> None:
        """A job that held a place and left the queue before it started (its submit failed
        after reserving, or it was canceled while queued): the place is free again."""
        if self.dispatcher.capacity is None:
            return
        try:
            self.dispatcher.capacity.release(job_id, self.settings.max_queue_depth)
        except Unavailable:
            pass  # a lost place; `repair` finds it once submits are refused

    def _free_slot(self, job: Job) -> None:
        """The tenant slot of a submit that failed before its job was stored (a stored job
        gives its slot back with its terminal write)."""
        if job.slot is None:
            return
        try:
            self.store.release_slot(job.tenant, job.slot)
        except Unavailable:
            pass  # a lost slot; `repair_slots` finds it once the tenant is refused
        job.slot = None

    def _forget(self, job: Job) -> None:
        try:
            self.store.forget(job)
        except Unavailable:
            return  # a queued job without a message is re-queued on its next replay
        self._free_slot(job)  # the job is gone: its slot with it
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
        if status and status not in STATUSES:
            raise bad_request(f"unknown status {status[:100]!r}", "invalid_parameter")
        if service and services.get(service) is None:
            raise bad_request(f"unknown service {service[:100]!r}", "invalid_parameter")
        try:
            limit = int(params.get("limit") or 20)
        except ValueError:
            raise bad_request("limit must be an integer 1-100", "invalid_parameter") from None
        if not 1 <= limit <= 100:
            raise bad_request("limit must be an integer 1-100", "invalid_parameter")
        after = self.cursors.read(params["cursor"], tenant.name, status, service) \
            if params.get("cursor") else None
        page = self.store.list(tenant.name, self.clock(), status=status, service=service,
                               limit=limit, after=after)
        cursor = self.cursors.make(page.last_job_id, tenant.name, status, service) \
            if page.last_job_id else None
        return page.jobs, cursor

    # -- changes -----------------------------------------------------------------------
    def cancel(self, tenant: Tenant, job_id: str) -> tuple[Job, bool]:
        """Returns the canceled job and whether it was running (202) or queued (200)."""
        job = self.get(tenant, job_id)
        now = self.clock()
        values = self.view.with_event(job, CANCELED, {}, now)
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


def _request_hash(req: SubmitRequest, content: bytes | None) -> str:
    canonical = json.dumps(req.model_dump(mode="json", exclude={"run_id"}), sort_keys=True,
                           separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode())
    if content is not None:
        digest.update(b"\0" + hashlib.sha256(content).digest())
    return digest.hexdigest()

