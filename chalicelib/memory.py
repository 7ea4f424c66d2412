"""In-memory adapters: the job store, the queues, the blobs, the tenants and the count of
jobs waiting, with the semantics of the AWS adapters (store.py, queue.py, blobs.py,
tenants.py, capacity.py): every job change is the same conditional write and raises the
ports' `Conflict` when its condition fails; a queue hides a received message for its
visibility timeout, counts its receives and moves it to the dead-letter queue after the
redrive limit. For the fast test tier (tests/conftest.py) and anything else that wants the
lifecycle without AWS; this module never imports boto3 or botocore.

`build_runtime` wires a `Runtime` on them; `SqsView` and `S3View` answer the few boto3
client calls the tests and the local pollers make (receive, delete, visibility, counts,
listing), over the same memory."""

from __future__ import annotations

import builtins
import copy
import dataclasses
import hashlib
import itertools
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlencode

from .jobs import CANCELED, FAILED, QUEUED, RUNNING, SUCCEEDED, TERMINAL, Job
from .leaks import TwoLooks
from .messages import JobMessage
from .ports import BlobsUnavailable, Conflict, QueueUnavailable, RunIdTaken, StoreUnavailable

if TYPE_CHECKING:
    from .blobs import BlobInfo
    from .runtime import Runtime
    from .store import Page
    from .tenants import KeyInfo, Tenant
    from .workerkeys import WorkerKey

# The AWS adapters' constants, repeated here so this module needs no boto3 (their modules
# import it); tests/test_memory_adapters.py checks they stay equal.
KEEP_LAST_DELIVERIES = 20  # store.KEEP_LAST_DELIVERIES
MAX_VISIBILITY = 43_200 - 300  # queue.MAX_VISIBILITY
CLAIM_FIELDS = ("claim_key", "available_at", "claimed_at", "run_deadline")  # store.CLAIM_ATTRS

# Job attribute names as the store's callers write them (camelCase) → Job fields.
_FIELD_OF = {"".join(w.title() if i else w for i, w in enumerate(f.name.split("_"))): f.name
             for f in dataclasses.fields(Job)}
_JOB_FIELDS = {f.name: f for f in dataclasses.fields(Job)}


def _stored(value: Any) -> Any:
    """A value as DynamoDB gives it back: whole floats are ints (its numbers are decimals),
    sets and tuples are lists, every container a copy."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_stored(v) for v in value]
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def _default(name: str) -> Any:
    f = _JOB_FIELDS[name]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _changed(job: Job, values: Mapping[str, Any], removes: tuple[str, ...] = ()) -> Job:
    """`job` with `values` (attribute names) set, None values and `removes` (field names)
    removed: a removed attribute reads back as the field's default, as from the table. An
    unknown attribute name is refused (ValueError), as store.apply does."""
    unknown = sorted(set(values) - set(_FIELD_OF))
    if unknown:
        raise ValueError(f"not job attributes: {', '.join(unknown)}")
    changes: dict[str, Any] = {name: _default(name) for name in removes}
    for attr, value in values.items():
        name = _FIELD_OF[attr]
        changes[name] = _default(name) if value is None else _stored(value)
    return dataclasses.replace(job, **changes)


@dataclass(frozen=True)
class _BlobInfo:
    size: int
    content_type: str | None


@dataclass
class _Page:
    jobs: list[Job]
    last_job_id: str | None


def _fresh(job: Job) -> Job:
    """A stored job as written: empty values dropped (read back as their defaults)."""
    data = {f.name: _stored(getattr(job, f.name)) for f in dataclasses.fields(Job)}
    for name, value in data.items():
        if value is None or value == {} or value == []:
            if name not in ("tenant", "job_id", "service", "status", "created_at", "expires_at"):
                data[name] = _default(name)
    return Job(**data)


class MemoryJobStore:
    """store.JobStore in a dict: the same conditions on every write (JobStorePort)."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], Job] = {}
        self._runs: dict[tuple[str, str], tuple[str, str, float]] = {}  # jobId, hash, expiresAt
        # Item attributes that are no Job field (the lease store's logBytes, shutdowns).
        self.extra: dict[tuple[str, str], dict[str, int]] = {}
        self.lock = self._lock = threading.RLock()
        # The tenant quota (capacity.TenantSlots) as one count per tenant: slot 0.
        self.slots: dict[str, int] = {}
        self.slot_clock: Callable[[], float] = time.monotonic
        self._slot_looks = TwoLooks(lambda: self.slot_clock())

    # -- the tenant quota ----------------------------------------------------------------
    def reserve_slot(self, tenant: str, job_id: str, limit: int) -> tuple[int | None, int]:
        with self._lock:
            taken = self.slots.get(tenant, 0)
            if taken < limit:
                self.slots[tenant] = taken + 1
                return 0, 0
            return None, taken

    def release_slot(self, tenant: str, slot: int) -> None:
        with self._lock:
            if self.slots.get(tenant, 0) > 0:
                self.slots[tenant] -= 1

    def repair_slots(self, tenant: str, counted: int, now: float) -> int:
        """TenantSlots.repair's rule: give back what two looks REPAIR_AFTER apart both
        showed beyond the tenant's live queued and running jobs."""
        leaked = self._slot_looks.leaked(tenant, counted - self.count_active(tenant, counted + 1, now))
        with self._lock:
            given = min(leaked, self.slots.get(tenant, 0))
            self.slots[tenant] = self.slots.get(tenant, 0) - given
            return given

    def ended(self, job: Job) -> Job:
        """The job's terminal write succeeded: its quota slot is free (store._ended)."""
        if job.slot is not None:
            self.release_slot(job.tenant, job.slot)
        return job

    # -- reads -------------------------------------------------------------------------
    def get(self, tenant: str, job_id: str, now: float, consistent: bool = True) -> Job | None:
        with self._lock:
            job = self._jobs.get((tenant, job_id))
            return None if job is None or job.expired(now) else copy.deepcopy(job)

    def list(self, tenant: str, now: float, *, status: str | None, service: str | None,
             limit: int, after: str | None) -> Page:
        """One page newest first; `after` (the previous page's last job ID) resumes below
        it, as store.JobStore.list."""
        with self._lock:
            found = sorted((j for (t, _), j in self._jobs.items()
                            if t == tenant and not j.expired(now)
                            and (status is None or j.status == status)
                            and (service is None or j.service == service)
                            and (after is None or j.job_id < after)),
                           key=lambda j: j.job_id, reverse=True)
            page = [copy.deepcopy(j) for j in found[:limit]]
        # store.Page's shape (store.py itself needs boto3).
        return cast("Page", _Page(page, page[-1].job_id if len(found) > limit and page else None))

    def count_active(self, tenant: str, cap: int, now: float) -> int:
        with self._lock:
            n = sum(1 for (t, _), j in self._jobs.items()
                    if t == tenant and j.status in (QUEUED, RUNNING) and not j.expired(now))
        return min(n, cap)

    def all_jobs(self) -> builtins.list[Job]:
        """Every stored job (tests), in creation order."""
        with self._lock:
            return [copy.deepcopy(j) for j in sorted(self._jobs.values(), key=lambda j: j.job_id)]

    # -- submit ------------------------------------------------------------------------
    def create(self, job: Job) -> None:
        with self._lock:
            key = (job.tenant, job.job_id)
            if job.run_id:
                run = self._runs.get((job.tenant, job.run_id))
                if run is not None and not run[2] < job.created_at:
                    raise RunIdTaken(run[0], run[1])
                if key in self._jobs:
                    raise StoreUnavailable("TransactionCanceledException",
                                           "the job exists already")
                self._runs[(job.tenant, job.run_id)] = (job.job_id, job.request_hash or "",
                                                        job.expires_at)
            elif key in self._jobs:
                raise Conflict(None)
            self._jobs[key] = _fresh(job)

    def create_if_absent(self, job: Job) -> None:
        try:
            self.create(job)
        except Conflict:
            pass  # created already

    def run_id_owner(self, tenant: str, run_id: str) -> tuple[str, str] | None:
        with self._lock:
            run = self._runs.get((tenant, run_id))
        return None if run is None else (run[0], run[1])

    def forget(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop((job.tenant, job.job_id), None)
            self.extra.pop((job.tenant, job.job_id), None)
            if job.run_id:
                self._runs.pop((job.tenant, job.run_id), None)

    # -- worker ------------------------------------------------------------------------
    def claim(self, tenant: str, job_id: str, token: str, lease_seconds: float, now: float) -> Job:
        def ok(j: Job) -> bool:
            lapsed = j.status == RUNNING and j.lease_until is not None and j.lease_until < now
            return (not j.expired(now) and j.attempts < j.max_attempts
                    and (j.status == QUEUED or lapsed))

        return self._update(tenant, job_id, ok, lambda j: dataclasses.replace(
            j, status=RUNNING, lease_token=token, lease_until=_stored(now + lease_seconds),
            attempts=j.attempts + 1,
            started_at=j.started_at if j.started_at is not None else _stored(now)))

    def heartbeat(self, tenant: str, job_id: str, token: str, values: dict[str, Any]) -> Job:
        return self._update(tenant, job_id, lambda j: _holds(j, token),
                            lambda j: _changed(j, values))

    def finish(self, tenant: str, job_id: str, token: str | None, status: str,
               values: dict[str, Any], now: float) -> Job:
        assert status in TERMINAL

        def ok(j: Job) -> bool:
            if token:
                return _holds(j, token)
            return j.status == QUEUED or (j.status == RUNNING and j.lease_until is not None
                                          and j.lease_until < now)

        def change(j: Job) -> Job:
            done = dataclasses.replace(j, status=status, completed_at=_stored(now))
            return _changed(done, values, ("lease_token", "lease_until", *CLAIM_FIELDS))

        return self.ended(self._update(tenant, job_id, ok, change))

    def release(self, tenant: str, job_id: str, token: str, code: str, message: str,
                retry_at: float | None = None) -> Job:
        def change(j: Job) -> Job:
            back = dataclasses.replace(j, status=QUEUED, error_code=code, error_message=message)
            if retry_at is not None:
                back.available_at = _stored(retry_at)
            return _changed(back, {}, ("lease_token", "lease_until"))

        return self._update(tenant, job_id, lambda j: _holds(j, token), change)

    def cancel(self, tenant: str, job_id: str, now: float, values: dict[str, Any]) -> Job:
        """Returns the job as it was before (as store.JobStore.cancel)."""
        with self._lock:
            before = self._jobs.get((tenant, job_id))
            self._update(tenant, job_id,
                         lambda j: not j.expired(now) and j.status in (QUEUED, RUNNING),
                         lambda j: _changed(
                             dataclasses.replace(j, status=CANCELED, completed_at=_stored(now)),
                             values, ("lease_token", "lease_until", *CLAIM_FIELDS)))
            assert before is not None
            self.ended(before)
            return copy.deepcopy(before)

    def record_delivery(self, tenant: str, job_id: str, delivery: dict[str, Any],
                        delivered: bool, at: float) -> Job | None:
        error = delivery.get("error") or None

        def change(j: Job) -> Job:
            kept = [*j.deliveries, _stored(delivery)]
            excess = len(kept) - 1 - KEEP_LAST_DELIVERIES
            if excess > 0:
                kept = kept[:1] + kept[1 + excess:]
            return dataclasses.replace(
                j, deliveries=kept, callback_attempts=j.callback_attempts + 1,
                callback_last_at=_stored(at), callback_last_error=error,
                callback_state="delivered" if delivered else "pending")

        try:
            return self._update(tenant, job_id, lambda j: j.callback_state == "pending", change)
        except Conflict:
            return None

    def set_callback_state(self, tenant: str, job_id: str, state: str, expect: str,
                           error: str | None = None) -> Job:
        def change(j: Job) -> Job:
            j = dataclasses.replace(j, callback_state=state)
            return dataclasses.replace(j, callback_last_error=error) if error else j

        return self._update(tenant, job_id, lambda j: j.callback_state == expect, change)

    def update_fields(self, tenant: str, job_id: str, values: dict[str, Any]) -> None:
        self._update(tenant, job_id, lambda j: True, lambda j: _changed(j, values))

    def delete(self, tenant: str, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get((tenant, job_id))
            if job is None or job.status not in (SUCCEEDED, FAILED, CANCELED):
                raise Conflict(copy.deepcopy(job))
            del self._jobs[(tenant, job_id)]
            self.extra.pop((tenant, job_id), None)
            if job.run_id and self._runs.get((tenant, job.run_id), ("",))[0] == job_id:
                del self._runs[(tenant, job.run_id)]
            return job

    # -- helpers -----------------------------------------------------------------------
    def _update(self, tenant: str, job_id: str, condition: Callable[[Job], bool],
                change: Callable[[Job], Job]) -> Job:
        """One conditional write: Conflict (with the job as it is, None when there is
        none) unless `condition` holds; the job as written otherwise."""
        with self._lock:
            job = self._jobs.get((tenant, job_id))
            if job is None or not condition(job):
                raise Conflict(copy.deepcopy(job))
            new = change(copy.deepcopy(job))
            self._jobs[(tenant, job_id)] = new
            return copy.deepcopy(new)


def _holds(job: Job, token: str) -> bool:
    return job.status == RUNNING and job.lease_token == token


# -- queues ------------------------------------------------------------------------------

ACCOUNT = "000000000000"


@dataclass
class _Message:
    message_id: str
    body: str
    sent_at: float
    visible_at: float
    receipt: str | None = None
    receive_count: int = 0
    first_received_at: float | None = None


@dataclass
class _Queue:
    name: str
    url: str
    arn: str
    visibility: int = 30
    dlq_url: str | None = None
    max_receives: int | None = None
    messages: list[_Message] = field(default_factory=list)


class MemoryQueues:
    """SQS queues in memory: visibility timeouts, delays, receive counts and the redrive to
    a dead-letter queue after `max_receives`. `clock` is wall-clock seconds (as SQS's)."""

    def __init__(self, region: str = "us-east-1", clock: Callable[[], float] = time.time):
        self.region, self.clock = region, clock
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Condition()
        self._ids = itertools.count(1)

    def create(self, name: str, visibility: int = 30, dlq_url: str | None = None,
               max_receives: int | None = None) -> str:
        url = f"https://sqs.{self.region}.memory.invalid/{ACCOUNT}/{name}"
        with self._lock:
            self._queues[url] = _Queue(name, url, f"arn:aws:sqs:{self.region}:{ACCOUNT}:{name}",
                                       visibility, dlq_url, max_receives)
        return url

    def queue(self, url: str) -> _Queue:
        found = self._queues.get(url)
        if found is None:
            raise QueueUnavailable("AWS.SimpleQueueService.NonExistentQueue", url)
        return found

    def url_of(self, name: str) -> str:
        for q in self._queues.values():
            if q.name == name:
                return q.url
        raise QueueUnavailable("AWS.SimpleQueueService.NonExistentQueue", name)

    def send(self, url: str, body: str, delay: int = 0) -> str:
        with self._lock:
            q, now = self.queue(url), self.clock()
            message = _Message(str(uuid.UUID(int=next(self._ids))), body, now, now + delay)
            q.messages.append(message)
            self._lock.notify_all()
            return message.message_id

    def receive(self, url: str, max_n: int = 1, wait: float = 0,
                visibility: int | None = None) -> list[dict[str, Any]]:
        """Up to `max_n` visible messages, each hidden for the queue's visibility timeout
        (SQS's ReceiveMessage shape, with every attribute); waits up to `wait` seconds
        for one, as a long poll."""
        deadline = time.monotonic() + wait
        with self._lock:
            while True:
                out = self._take(self.queue(url), max_n, visibility)
                left = deadline - time.monotonic()
                if out or left <= 0:
                    return out
                self._lock.wait(min(left, 0.05))  # a delayed message may come due meanwhile

    def _take(self, q: _Queue, max_n: int, visibility: int | None) -> list[dict[str, Any]]:
        now, out = self.clock(), builtins.list[dict[str, Any]]()
        for m in list(q.messages):
            if len(out) >= max_n:
                break
            if m.visible_at > now:
                continue
            if q.max_receives is not None and q.dlq_url and m.receive_count >= q.max_receives:
                q.messages.remove(m)  # the redrive: SQS moves it on the receive past the limit
                dlq = self.queue(q.dlq_url)
                dlq.messages.append(dataclasses.replace(m, visible_at=now, receipt=None))
                continue
            m.receive_count += 1
            m.first_received_at = m.first_received_at or now
            m.receipt = secrets.token_urlsafe(16)
            m.visible_at = now + (q.visibility if visibility is None else visibility)
            out.append({
                "MessageId": m.message_id, "ReceiptHandle": m.receipt, "Body": m.body,
                "MD5OfBody": hashlib.md5(m.body.encode(), usedforsecurity=False).hexdigest(),
                "Attributes": {
                    "ApproximateReceiveCount": str(m.receive_count),
                    "SentTimestamp": str(int(m.sent_at * 1000)),
                    "ApproximateFirstReceiveTimestamp": str(int(m.first_received_at * 1000)),
                    "SenderId": ACCOUNT}})
        return out

    def _by_receipt(self, q: _Queue, receipt: str) -> _Message | None:
        return next((m for m in q.messages if m.receipt == receipt), None)

    def delete(self, url: str, receipt: str) -> None:
        """A receipt handle that names no message any more is ignored (as SQS does)."""
        with self._lock:
            q = self.queue(url)
            found = self._by_receipt(q, receipt)
            if found is not None:
                q.messages.remove(found)

    def change_visibility(self, url: str, receipt: str, seconds: int) -> None:
        with self._lock:
            q = self.queue(url)
            found = self._by_receipt(q, receipt)
            if found is None:
                raise QueueUnavailable("ReceiptHandleIsInvalid", receipt)
            if found.visible_at <= self.clock():
                raise QueueUnavailable("AWS.SimpleQueueService.MessageNotInflight", receipt)
            found.visible_at = self.clock() + seconds
            self._lock.notify_all()

    def counts(self, url: str) -> dict[str, int]:
        """SQS's ApproximateNumberOfMessages{,NotVisible,Delayed} (exact here)."""
        with self._lock:
            now = self.clock()
            q = self.queue(url)
            visible = sum(1 for m in q.messages if m.visible_at <= now)
            delayed = sum(1 for m in q.messages if m.visible_at > now and not m.receive_count)
            return {"ApproximateNumberOfMessages": visible,
                    "ApproximateNumberOfMessagesNotVisible": len(q.messages) - visible - delayed,
                    "ApproximateNumberOfMessagesDelayed": delayed}

    def purge(self, url: str) -> None:
        with self._lock:
            self.queue(url).messages.clear()


class MemoryDispatcher:
    """queue.Dispatcher on MemoryQueues (QueuePort)."""

    def __init__(self, queues: MemoryQueues, jobs_url: str, callbacks_url: str,
                 capacity: MemoryCapacity | None = None):
        self.queues = queues
        self.jobs_url, self.callbacks_url = jobs_url, callbacks_url
        self.capacity = capacity

    def send_job(self, tenant: str, job_id: str, service: str | None = None,
                 delay: int = 0) -> None:
        self.queues.send(self.jobs_url, JobMessage(tenant, job_id, service).dumps(), delay)

    def send_callback(self, tenant: str, job_id: str, event_id: str, url: str, event: str,
                      base: int = 0) -> None:
        message: dict[str, str | int] = {"tenant": tenant, "jobId": job_id, "eventId": event_id,
                                         "url": url, "event": event}
        if base:
            message["base"] = base
        self.send_raw(self.callbacks_url, json.dumps(message, separators=(",", ":")))

    def send_raw(self, queue_url: str, body: str) -> None:
        self.queues.send(queue_url, body)

    def url_of(self, name: str) -> str:
        return self.queues.url_of(name)

    def delete_batch(self, queue_url: str, receipt_handles: list[str]) -> None:
        for handle in receipt_handles:
            self.queues.delete(queue_url, handle)

    def retry_later(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        self.queues.change_visibility(queue_url, receipt_handle,
                                      max(0, min(MAX_VISIBILITY, seconds)))

    def messages_held(self, now: float | None = None) -> int:
        """Messages in the jobs queue, in flight and delayed included (exact, uncached)."""
        return sum(self.queues.counts(self.jobs_url).values())


class MemoryCapacity:
    """capacity.QueueCapacity as one counter: reserve under the limit, give back, and the
    same two-look repair of places whose release was lost."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.count = 0
        self._looks = TwoLooks(lambda: self._clock())

    def reserve(self, job_id: str, limit: int) -> tuple[bool, int]:
        with self._lock:
            if self.count < limit:
                self.count += 1
                return True, 0
            return False, self.count

    def release(self, job_id: str, limit: int, places: int = 1) -> int:
        with self._lock:
            given = min(places, self.count)
            self.count -= given
            return given

    def repair(self, counted: int, queue_holds: int, limit: int) -> int:
        leaked = self._looks.leaked("queue", counted - queue_holds)
        return self.release("", limit, leaked) if leaked else 0


# -- blobs -------------------------------------------------------------------------------

class MemoryBlobs:
    """blobs.BlobStore in a dict (BlobPort). Presigned URLs carry S3's query parameters
    (X-Amz-Expires, the download's Content-Disposition) but serve nothing."""

    def __init__(self, bucket: str = "jobgate-memory"):
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, str | None]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, body: bytes, content_type: str) -> None:
        with self._lock:
            self.objects[key] = (bytes(body), content_type)

    def upload(self, key: str, stream: IO[bytes], content_type: str) -> int:
        data = stream.read()
        self.put(key, data, content_type)
        return len(data)

    def copy(self, source: str, target: str) -> None:
        with self._lock:
            if source not in self.objects:
                raise BlobsUnavailable("404", f"no object {source}")
            self.objects[target] = self.objects[source]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self.objects.get(key)
        return None if found is None else found[0]

    def head(self, key: str) -> BlobInfo | None:
        with self._lock:
            found = self.objects.get(key)
        # blobs.BlobInfo's shape (blobs.py itself needs botocore).
        return None if found is None else cast("BlobInfo", _BlobInfo(len(found[0]), found[1]))

    def delete(self, *keys: str | None) -> None:
        with self._lock:
            for key in keys:
                if key:
                    self.objects.pop(key, None)

    def presign(self, key: str, seconds: int, filename: str | None = None) -> str:
        params = {"X-Amz-Expires": str(seconds)}
        if filename:
            params["response-content-disposition"] = f'attachment; filename="{filename}"'
        return self._url(key, params)

    def presign_put(self, key: str, seconds: int) -> str:
        return self._url(key, {"X-Amz-Expires": str(seconds), "X-Amz-Method": "PUT"})

    def _url(self, key: str, params: dict[str, str]) -> str:
        # Path style, as the local runner's S3 client addresses its bucket.
        return f"https://s3.memory.invalid/{self.bucket}/{quote(key)}?{urlencode(params)}"


# -- tenants -----------------------------------------------------------------------------

class MemoryTenants:
    """tenants.TenantStore in dicts: tenants, key digests, audit records. Authentication
    and the tenants themselves are tenants.py's (imported on use: that module reaches
    store.py, which needs boto3). Nothing is cached: a revoke works at once."""

    def __init__(self) -> None:
        self._by_name: dict[str, Tenant] = {}
        self._keys: dict[str, tuple[str, KeyInfo]] = {}  # digest -> (tenant, its listing)
        self._audit: dict[str, list[dict[str, Any]]] = {}
        # TenantStore's cache, by its name (tests clear it): nothing is cached here.
        self._tenants: dict[str, Any] = {}
        self._lock = threading.Lock()

    def put_tenant(self, tenant: Tenant) -> None:
        from .tenants import check_tenant_name

        check_tenant_name(tenant.name)
        with self._lock:
            self._by_name[tenant.name] = copy.deepcopy(tenant)

    def create_tenant(self, tenant: Tenant) -> None:
        from .tenants import check_tenant_name

        check_tenant_name(tenant.name)
        with self._lock:
            if tenant.name in self._by_name:
                raise StoreUnavailable("ConditionalCheckFailedException", "tenant exists")
            self._by_name[tenant.name] = copy.deepcopy(tenant)

    def get_tenant(self, name: str) -> Tenant | None:
        with self._lock:
            return copy.deepcopy(self._by_name.get(name))

    def get_tenant_cached(self, name: str) -> Tenant | None:
        return self.get_tenant(name)

    def update_tenant(self, name: str, values: dict[str, Any]) -> None:
        """Attribute names as tenants.TenantStore writes them (camelCase); None removes."""
        with self._lock:
            tenant = self._by_name.get(name)
            if tenant is None:
                raise StoreUnavailable("ConditionalCheckFailedException", "no such tenant")
            names = {"".join(w.title() if i else w for i, w in enumerate(f.name.split("_"))):
                     f for f in dataclasses.fields(tenant)}
            for attr, value in values.items():
                f = names[attr]
                if value is None:
                    value = f.default_factory() if f.default_factory is not dataclasses.MISSING \
                        else f.default
                setattr(tenant, f.name, _stored(value))

    def add_key(self, tenant: str, api_key: str, label: str = "",
                created_at: float | None = None) -> str:
        from .tenants import KeyInfo, key_digest, key_id

        digest = key_digest(api_key)
        info = KeyInfo(key_id=key_id(digest), tenant=tenant, created_at=created_at or time.time(),
                       label=label)
        with self._lock:
            self._keys[digest] = (tenant, info)
        return info.key_id

    def list_keys(self, tenant: str) -> list[KeyInfo]:
        with self._lock:
            found = [copy.copy(i) for t, i in self._keys.values() if t == tenant]
        return sorted(found, key=lambda k: k.created_at)

    def revoke_key(self, tenant: str, kid: str, now: float | None = None) -> bool:
        with self._lock:
            for t, info in self._keys.values():
                if t == tenant and info.key_id == kid:
                    info.revoked_at = now or time.time()
                    return True
        return False

    def add_audit(self, tenant: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._audit.setdefault(tenant, []).append(_stored(record))

    def list_audit(self, tenant: str) -> list[dict[str, Any]]:
        with self._lock:
            return sorted(copy.deepcopy(self._audit.get(tenant, [])), key=lambda r: r["at"])

    def authenticate(self, authorization: str | None) -> Tenant:
        import hmac

        from .tenants import key_digest, parse_authorization, unauthorized

        named, api_key = parse_authorization(authorization)
        with self._lock:
            entry = self._keys.get(key_digest(api_key))
        live = entry is not None and entry[1].revoked_at is None
        tenant = self.get_tenant(entry[0]) if live and entry else None
        if tenant is None or (named is not None and not hmac.compare_digest(
                named.encode("utf-8", "surrogatepass"), tenant.name.encode())):
            raise unauthorized()
        return tenant


# -- worker services: leases and worker keys ---------------------------------------------

class MemoryLeases:
    """leasestore.LeaseStore on a MemoryJobStore's jobs: the claim index (claimKey,
    availableAt) and the same conditions on the lease (held: live and this token; lapsed:
    this token and run out), scoped to the services a worker key serves."""

    def __init__(self, store: MemoryJobStore):
        self._store = store

    def _due(self, claim_key: str, now: float) -> builtins.list[Job]:
        with self._store.lock:
            jobs = [j for j in self._store._jobs.values() if j.claim_key == claim_key
                    and j.available_at is not None and j.available_at <= now]
        return sorted(jobs, key=lambda j: (j.available_at or 0.0, j.job_id))

    def candidates(self, claim_key: str, now: float, limit: int) -> builtins.list[tuple[str, str]]:
        return [(j.tenant, j.job_id) for j in self._due(claim_key, now)[:limit]]

    def count_due(self, claim_key: str, now: float, cap: int) -> int:
        return min(cap, len(self._due(claim_key, now)))

    def claim(self, tenant: str, job_id: str, claim_key: str, token: str, now: float,
              until: float, deadline: float) -> Job:
        def ok(j: Job) -> bool:
            return (not j.expired(now) and j.attempts < j.max_attempts and j.status == QUEUED
                    and j.claim_key == claim_key and j.available_at is not None
                    and j.available_at <= now)

        return self._store._update(tenant, job_id, ok, lambda j: dataclasses.replace(
            j, status=RUNNING, lease_token=token, lease_until=_stored(until),
            available_at=_stored(until), claimed_at=_stored(now), run_deadline=_stored(deadline),
            attempts=j.attempts + 1,
            started_at=j.started_at if j.started_at is not None else _stored(now)))

    def heartbeat(self, tenant: str, job_id: str, token: str, now: float, until: float,
                  values: dict[str, Any], variables: dict[str, str], lines: list[str],
                  services: tuple[str, ...], check_room: bool = True) -> Job:
        from .leases import LOG_ITEM_BYTES, log_bytes

        size = log_bytes(lines) if lines else 0
        extra = self._extra(tenant, job_id)

        def ok(j: Job) -> bool:
            if not (_held(j, token, now, services) and j.run_deadline is not None
                    and j.run_deadline >= until):
                return False
            if lines and check_room:
                used = extra.get("logBytes")
                return size <= LOG_ITEM_BYTES and (used is None or used <= LOG_ITEM_BYTES - size)
            return True

        def change(j: Job) -> Job:
            j = _changed(j, values)
            j = dataclasses.replace(j, lease_until=_stored(until), available_at=_stored(until),
                                    status_vars={**j.status_vars, **variables})
            if lines:
                j = dataclasses.replace(j, log_lines=[*j.log_lines, *lines])
                extra["logBytes"] = extra.get("logBytes", 0) + size
            return j

        return self._store._update(tenant, job_id, ok, change)

    def release(self, tenant: str, job_id: str, token: str, now: float, available_at: float,
                code: str, message: str, lines: list[str], services: tuple[str, ...],
                lapsed: bool = False, kept: list[str] | None = None,
                given_back: bool = False) -> Job:
        from .leases import MAX_SHUTDOWNS, fitting, log_bytes

        lines = fitting(kept or [], lines)
        extra = self._extra(tenant, job_id)

        def ok(j: Job) -> bool:
            held = (_lapsed if lapsed else _held)(j, token, now, services)
            return held and (not given_back or extra.get("shutdowns", 0) < MAX_SHUTDOWNS)

        def change(j: Job) -> Job:
            j = _changed(dataclasses.replace(
                j, status=QUEUED, error_code=code, error_message=message,
                available_at=_stored(available_at)), {},
                ("lease_token", "lease_until", "claimed_at", "run_deadline"))
            if lines:
                j = dataclasses.replace(j, log_lines=[*j.log_lines, *lines])
                extra["logBytes"] = log_bytes([*(kept or []), *lines])
            if given_back:
                j = dataclasses.replace(j, attempts=j.attempts - 1)
                extra["shutdowns"] = extra.get("shutdowns", 0) + 1
            return j

        return self._store._update(tenant, job_id, ok, change)

    def finish(self, tenant: str, job_id: str, token: str, status: str, values: dict[str, Any],
               now: float, services: tuple[str, ...], lapsed: bool = False) -> Job:
        gone = tuple(f for f in ("lease_token", "lease_until", "log_lines", *CLAIM_FIELDS)
                     if _attr(f) not in values)

        def change(j: Job) -> Job:
            for name in ("logBytes", "shutdowns"):
                if name not in values:
                    self._extra(tenant, job_id).pop(name, None)
            done = dataclasses.replace(j, status=status, completed_at=_stored(now))
            return _changed(done, values, gone)

        return self._store.ended(self._store._update(
            tenant, job_id, lambda j: (_lapsed if lapsed else _held)(j, token, now, services),
            change))

    def set_content_key(self, tenant: str, job_id: str, key: str) -> None:
        self._store._update(tenant, job_id, lambda j: True,
                            lambda j: dataclasses.replace(j, content_key=key))

    def drop_claim(self, tenant: str, job_id: str) -> None:
        try:
            self._store._update(tenant, job_id, lambda j: j.status not in (QUEUED, RUNNING),
                                lambda j: dataclasses.replace(j, claim_key=None,
                                                              available_at=None))
        except Conflict:
            pass

    def _extra(self, tenant: str, job_id: str) -> dict[str, int]:
        with self._store.lock:
            return self._store.extra.setdefault((tenant, job_id), {})


def _attr(field_name: str) -> str:
    return "".join(w.title() if i else w for i, w in enumerate(field_name.split("_")))


def _held(job: Job, token: str, now: float, services: tuple[str, ...]) -> bool:
    return (job.status == RUNNING and job.lease_token == token and job.lease_until is not None
            and job.lease_until >= now and (not services or job.service in services))


def _lapsed(job: Job, token: str, now: float, services: tuple[str, ...]) -> bool:
    return (job.status == RUNNING and job.lease_token == token and job.lease_until is not None
            and job.lease_until < now and (not services or job.service in services))


class MemoryWorkerKeys:
    """workerkeys.WorkerKeyStore in a dict (digests only). Nothing is cached: a revoke
    works at once."""

    def __init__(self) -> None:
        self._keys: dict[str, WorkerKey] = {}  # digest -> key
        self._lock = threading.Lock()

    def add(self, key: str, services: list[str], label: str = "",
            created_at: float | None = None) -> str:
        from .tenants import key_digest, key_id
        from .workerkeys import WorkerKey

        digest = key_digest(key)
        with self._lock:
            if digest in self._keys:
                raise StoreUnavailable("TransactionCanceledException", "the key exists")
            self._keys[digest] = WorkerKey(key_id(digest), tuple(services),
                                           created_at or time.time(), label)
        return key_id(digest)

    def list(self) -> builtins.list[WorkerKey]:
        with self._lock:
            return sorted(self._keys.values(), key=lambda k: k.created_at)

    def revoke(self, kid: str, now: float | None = None) -> bool:
        with self._lock:
            for digest, key in self._keys.items():
                if key.key_id == kid and key.revoked_at is None:
                    self._keys[digest] = dataclasses.replace(key, revoked_at=now or time.time())
                    return True
        return False

    def authenticate(self, authorization: str | None) -> WorkerKey:
        from .tenants import key_digest, unauthorized

        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise unauthorized("worker credentials required: Authorization: Bearer <worker key>")
        with self._lock:
            key = self._keys.get(key_digest(value))
        if key is None or key.revoked_at is not None:
            raise unauthorized()
        return key


# -- the runtime, and boto3-shaped views for tests ---------------------------------------

class NoDynamoDB:
    """The DynamoDB client slot of a memory runtime: whatever still talks to DynamoDB
    directly (the admin command's stores, a test reading items) fails loudly here."""

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(f"DynamoDB.{name}: not available on the memory adapters "
                                  "(mark the test moto)")


class SqsView:
    """The boto3 SQS client calls tests and the local pollers make, on MemoryQueues."""

    def __init__(self, queues: MemoryQueues):
        self.queues = queues

    def receive_message(self, QueueUrl: str, MaxNumberOfMessages: int = 1,  # noqa: N803
                        WaitTimeSeconds: int = 0, VisibilityTimeout: int | None = None,
                        **_: Any) -> dict[str, Any]:
        out = self.queues.receive(QueueUrl, MaxNumberOfMessages, WaitTimeSeconds,
                                  VisibilityTimeout)
        return {"Messages": out} if out else {}

    def send_message(self, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0,  # noqa: N803
                     **_: Any) -> dict[str, Any]:
        return {"MessageId": self.queues.send(QueueUrl, MessageBody, DelaySeconds)}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:  # noqa: N803
        self.queues.delete(QueueUrl, ReceiptHandle)
        return {}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]  # noqa: N803
                             ) -> dict[str, Any]:
        for entry in Entries:
            self.queues.delete(QueueUrl, entry["ReceiptHandle"])
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str,  # noqa: N803
                                  VisibilityTimeout: int) -> dict[str, Any]:  # noqa: N803
        self.queues.change_visibility(QueueUrl, ReceiptHandle, VisibilityTimeout)
        return {}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]  # noqa: N803
                             ) -> dict[str, Any]:
        attrs = {k: str(v) for k, v in self.queues.counts(QueueUrl).items()}
        attrs["QueueArn"] = self.queues.queue(QueueUrl).arn
        attrs["VisibilityTimeout"] = str(self.queues.queue(QueueUrl).visibility)
        everything = "All" in AttributeNames
        return {"Attributes": {k: v for k, v in attrs.items() if everything or k in AttributeNames}}

    def set_queue_attributes(self, QueueUrl: str, Attributes: dict[str, str]  # noqa: N803
                             ) -> dict[str, Any]:
        """VisibilityTimeout only (what the tests change)."""
        unknown = set(Attributes) - {"VisibilityTimeout"}
        if unknown:
            raise NotImplementedError(f"memory queues cannot set {sorted(unknown)}")
        self.queues.queue(QueueUrl).visibility = int(Attributes["VisibilityTimeout"])
        return {}

    def get_queue_url(self, QueueName: str) -> dict[str, Any]:  # noqa: N803
        return {"QueueUrl": self.queues.url_of(QueueName)}

    def purge_queue(self, QueueUrl: str) -> dict[str, Any]:  # noqa: N803
        self.queues.purge(QueueUrl)
        return {}


class S3View:
    """The boto3 S3 client calls tests make, on MemoryBlobs (one bucket)."""

    def __init__(self, blobs: MemoryBlobs):
        self.blobs = blobs

    def list_objects_v2(self, Bucket: str, Prefix: str = "", **_: Any) -> dict[str, Any]:  # noqa: N803
        keys = sorted(k for k in list(self.blobs.objects) if k.startswith(Prefix))
        out: dict[str, Any] = {"KeyCount": len(keys)}
        if keys:
            out["Contents"] = [{"Key": k, "Size": len(self.blobs.objects[k][0])} for k in keys]
        return out

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803
        import io

        found = self.blobs.objects.get(Key)
        if found is None:
            raise BlobsUnavailable("NoSuchKey", Key)
        return {"Body": io.BytesIO(found[0]), "ContentType": found[1],
                "ContentLength": len(found[0])}

    def put_object(self, Bucket: str, Key: str, Body: bytes | str,  # noqa: N803
                   ContentType: str = "binary/octet-stream", **_: Any) -> dict[str, Any]:  # noqa: N803
        self.blobs.put(Key, Body.encode() if isinstance(Body, str) else Body, ContentType)
        return {}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        info = self.blobs.head(Key)
        if info is None:
            raise BlobsUnavailable("404", Key)
        return {"ContentLength": info.size, "ContentType": info.content_type}

    def delete_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self.blobs.delete(Key)
        return {}


@dataclass
class MemoryAws:
    """Everything a memory runtime keeps: the adapters, and the queues' names → URLs."""

    store: MemoryJobStore
    queues: MemoryQueues
    dispatcher: MemoryDispatcher
    blobs: MemoryBlobs
    tenants: MemoryTenants
    capacity: MemoryCapacity
    urls: dict[str, str]


def queue_set(queues: MemoryQueues, prefix: str, jobs_visibility: int = 960,
              jobs_max_receives: int = 10) -> dict[str, str]:
    """The four queues as localrunner/provision.py creates them (visibility, redrive)."""
    urls = {"jobs_dlq": queues.create(f"{prefix}-jobs-dlq"),
            "callbacks_dlq": queues.create(f"{prefix}-callbacks-dlq")}
    urls["jobs"] = queues.create(f"{prefix}-jobs", jobs_visibility, urls["jobs_dlq"],
                                 jobs_max_receives)
    urls["callbacks"] = queues.create(f"{prefix}-callbacks", 60, urls["callbacks_dlq"], 100)
    return urls


def build_runtime(env: Mapping[str, str] | None = None, prefix: str = "jobgate-memory",
                  region: str = "us-east-1", jobs_visibility: int = 960,
                  tenants: Sequence[tuple[str, str, str]] = ()) -> tuple[Runtime, MemoryAws]:
    """A Runtime on the memory adapters (settings from `env`, the queue URLs added), and
    tenants `(name, api key, whsec secret)`, as localrunner.provision.local_runtime."""
    from .connections import Clients
    from .runtime import assemble
    from .settings import Settings
    from .tenants import Tenant

    queues = MemoryQueues(region)
    urls = queue_set(queues, prefix, jobs_visibility)
    values = {"AWS_DEFAULT_REGION": region, "JOBGATE_TABLE": f"{prefix}-jobs",
              "JOBGATE_BUCKET": f"{prefix}-results", **dict(env or {}),
              "JOBGATE_JOBS_QUEUE_URL": urls["jobs"], "JOBGATE_JOBS_DLQ_URL": urls["jobs_dlq"],
              "JOBGATE_CALLBACKS_QUEUE_URL": urls["callbacks"],
              "JOBGATE_CALLBACKS_DLQ_URL": urls["callbacks_dlq"]}
    values.setdefault("JOBGATE_CURSOR_SECRET", secrets.token_urlsafe(32))
    settings = Settings.from_env(values)
    capacity = MemoryCapacity()
    aws = MemoryAws(MemoryJobStore(), queues,
                    MemoryDispatcher(queues, urls["jobs"], urls["callbacks"], capacity),
                    MemoryBlobs(settings.bucket_name), MemoryTenants(), capacity, urls)
    clients = Clients(dynamodb=cast(Any, NoDynamoDB()), sqs=cast(Any, SqsView(queues)),
                      s3=cast(Any, S3View(aws.blobs)))
    # The Runtime's fields are typed by the AWS adapters; these satisfy the same ports.
    rt = assemble(settings, clients, cast(Any, aws.store), cast(Any, aws.blobs),
                  cast(Any, aws.dispatcher), cast(Any, aws.tenants), values)
    # Worker services: their API built now, on the memory leases and keys.
    from .workers import WorkerApi

    workers = WorkerApi(rt)
    workers.leases = cast(Any, MemoryLeases(aws.store))
    workers.keys = cast(Any, MemoryWorkerKeys())
    rt.__dict__["workers"] = workers  # Runtime.workers is a cached_property
    for name, key, secret in tenants:
        aws.tenants.put_tenant(Tenant(name=name, webhook_secrets=[secret]))
        aws.tenants.add_key(name, key, label="local")
    return rt, aws


if TYPE_CHECKING:  # mypy checks that the memory adapters implement the ports
    from .ports import BlobPort, JobStorePort, QueuePort

    def _conforms(store: MemoryJobStore, dispatcher: MemoryDispatcher,
                  blobs: MemoryBlobs) -> tuple[JobStorePort, QueuePort, BlobPort]:
        return store, dispatcher, blobs
