"""Wiring: settings, AWS clients and the objects built on them, created once per process
and shared by every handler (tests build their own with `build`)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from . import cursor_secret, services
from .api import JobsApi
from .blobs import BlobStore, content_key
from .capacity import QueueCapacity
from .connections import Clients, create_clients
from .jobs import QUEUED, SUCCEEDED, Job
from .leases import make_claimable
from .messages import Malformed, Retry, parse_job_message
from .queue import MAX_VISIBILITY, Dispatcher
from .settings import Settings
from .store import JobStore
from .tenants import TenantStore
from .views import JobView

if TYPE_CHECKING:
    from .batch import Record
    from .callbacks import Deliverer
    from .worker import Worker
    from .workers import WorkerApi

log = logging.getLogger("jobgate")


@dataclass
class Runtime:
    settings: Settings
    clients: Clients
    store: JobStore
    blobs: BlobStore
    dispatcher: Dispatcher
    tenants: TenantStore
    api: JobsApi
    view: JobView

    # The worker and the webhook sender are built on first use: the API function never
    # needs them, and its cold start should not pay for their imports.
    @cached_property
    def worker(self) -> Worker:
        from .worker import Worker

        return Worker(self.store, self.blobs, self.dispatcher, self.settings, self.view,
                      after_end=self.after_end)

    @cached_property
    def workers(self) -> WorkerApi:
        from .workers import WorkerApi

        return WorkerApi(self)

    @cached_property
    def deliverer(self) -> Deliverer:
        from .callbacks import Deliverer
        from .compat import baw

        return Deliverer(self.store, self.tenants, self.dispatcher, self.settings,
                         self.settings.callbacks_dlq_url,
                         payload=lambda event: baw.payload(event, self.blobs))

    # -- what follows a job's end (idempotent: re-run when a message comes back) ---------
    def after_end(self, job: Job, fresh: bool = True) -> None:
        """What follows a job's end. `fresh`: this caller made the terminal write. Otherwise
        (a message came back after the end) the webhook is queued again only if no attempt
        was recorded yet: once one was, its message exists and owns the retry schedule."""
        resend = fresh or job.callback_attempts == 0
        if job.callback_url and job.callback_state == "pending" and job.callback_event and resend:
            self.dispatcher.send_callback(job.tenant, job.job_id, event_id(job), job.callback_url,
                                          job.callback_event)
        if job.status == SUCCEEDED and job.chain and job.next and not job.chain_started:
            self.start_next(job)

    def start_next(self, job: Job) -> None:
        """The chain's next job: its ID was fixed in the previous job's terminal write, so
        repeating this after a crash creates nothing twice."""
        step, now = job.chain[0], time.time()
        service = services.get(step["service"])
        nxt = Job(
            tenant=job.tenant, job_id=job.next or "", service=step["service"], status=QUEUED,
            created_at=now, expires_at=now + self.settings.job_ttl_seconds,
            input=step.get("input"), variables=dict(step.get("variables") or {}),
            log_level=job.log_level, callback_url=job.callback_url, chain=job.chain[1:],
            previous=job.job_id, base_url=job.base_url, content_type=job.result_type,
            max_attempts=(service.max_attempts if service else None)
            or self.settings.job_max_attempts,
        )
        make_claimable(nxt, service.runs_on if service else "lambda", now)
        if job.result_key:
            nxt.content_key = content_key(job.tenant, nxt.job_id)
            self.blobs.copy(job.result_key, nxt.content_key)
        self.store.create_if_absent(nxt)
        self.dispatcher.send_job(job.tenant, nxt.job_id, nxt.service)
        self.store.update_fields(job.tenant, job.job_id, {"chainStarted": True})

    def redeliver(self, job: Job, previous_state: str) -> None:
        """Send the stored event again, as a schedule of its own (retries count from now).
        If the message cannot be sent, the webhook goes back to its previous state: a
        `pending` with no message would refuse every later redelivery (409)."""
        try:
            self.dispatcher.send_callback(job.tenant, job.job_id, event_id(job),
                                          job.callback_url or "", job.callback_event or "",
                                          base=job.callback_attempts)
        except Exception:
            try:
                self.store.set_callback_state(job.tenant, job.job_id, previous_state, "pending")
            except Exception:  # noqa: BLE001  (the original error is the one to report)
                log.exception("could not restore the webhook state after a failed redelivery")
            raise

    # -- SQS record handlers -----------------------------------------------------------
    def handle_job_record(self, record: Record, time_left: float | None = None) -> None:
        """`time_left`: what the invocation may still spend on a handler (lambda_time_left)."""
        left = lambda_time_left(None) if time_left is None else time_left

        def process(body: str) -> None:
            if self.workers.owns(body):  # a worker service's job: watched here, never run
                self.workers.watch(body, record.receive_count)
            else:
                self.worker.process(body, left)

        self._handle(record, process, self.settings.jobs_dlq_url)

    def handle_dead_job(self, record: Record) -> None:
        """A job message that exhausted its receives: its job must not stay queued/running."""
        try:
            msg = parse_job_message(record.body)
        except Malformed:
            # Keep it in the DLQ for an operator to look at; hide it as long as SQS allows.
            self.dispatcher.retry_later(self.queue_url(record.queue_name),
                                        record.receipt_handle, MAX_VISIBILITY)
            raise Deferred("malformed message parked in the DLQ") from None
        now = self.worker.clock()
        self._handle(record, lambda _: self.worker.settle(
            self.store.get(msg.tenant, msg.job_id, now), now, "dead_lettered",
            "the job message could not be processed"), self.settings.jobs_dlq_url)

    def handle_callback_record(self, record: Record) -> None:
        self._handle(record, self.deliverer.process, self.settings.callbacks_dlq_url)

    def handle_dead_callback(self, record: Record) -> None:
        """A callback message that exhausted its receives: its webhook must not stay
        `pending` for ever; it is marked failed and counted given up (CallbacksGivenUp)."""
        from .callbacks import parse_message

        try:
            parse_message(record.body)
        except Malformed:
            # Keep it in the DLQ for an operator to look at; hide it as long as SQS allows.
            self.dispatcher.retry_later(self.queue_url(record.queue_name),
                                        record.receipt_handle, MAX_VISIBILITY)
            raise Deferred("malformed message parked in the DLQ") from None
        self.deliverer.process_dead(record.body)

    def _handle(self, record: Record, process: Callable[[str], None], dlq_url: str) -> None:
        """Retry → hide the message for the delay and report it failed; Malformed → DLQ."""
        try:
            process(record.body)
        except Retry as retry:
            self.dispatcher.retry_later(self.queue_url(record.queue_name),
                                        record.receipt_handle, retry.delay)
            raise Deferred(f"retry in {retry.delay}s: {retry.reason}") from None
        except Malformed as exc:
            log.error("malformed message sent to the DLQ: %s", exc)
            self.dispatcher.send_raw(dlq_url, record.body)

    def queue_url(self, name: str) -> str:
        for url in (self.settings.jobs_queue_url, self.settings.callbacks_queue_url,
                    self.settings.jobs_dlq_url, self.settings.callbacks_dlq_url):
            if url.rstrip("/").rsplit("/", 1)[-1] == name:
                return url
        return self.dispatcher.url_of(name)


class Deferred(Exception):
    """A record put back on purpose (not an error worth a stack trace)."""

    expected = True


def event_id(job: Job) -> str:
    """One event per job end, the same on every retry (no '.' for Standard Webhooks)."""
    return f"evt_{job.job_id}"


def build(settings: Settings, clients: Clients, env: Mapping[str, str] | None = None) -> Runtime:
    """`env` (default: the process environment) names the cursor secret (cursor_secret)."""
    store = JobStore(clients.dynamodb, settings.table_name)
    blobs = BlobStore(clients.s3, settings.bucket_name)
    dispatcher = Dispatcher(clients.sqs, settings.jobs_queue_url, settings.callbacks_queue_url,
                            capacity=QueueCapacity(clients.dynamodb, settings.table_name))
    tenants = TenantStore(clients.dynamodb, settings.table_name)
    secret = cursor_secret.resolve(os.environ if env is None else env, settings.region)
    view = JobView(blobs, settings, tenant_of=tenants.get_tenant_cached, stage_secret=secret)
    api = JobsApi(store, blobs, dispatcher, settings, view, secret)
    return Runtime(settings=settings, clients=clients, store=store, blobs=blobs,
                   dispatcher=dispatcher, tenants=tenants, api=api, view=view)


_current: Runtime | None = None
_lock = threading.Lock()


def get() -> Runtime:
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                settings = Settings.from_env()
                _current = build(settings, create_clients(settings.region))
    return _current


def set_current(rt: Runtime | None) -> None:
    """Tests and the local runner install their own runtime."""
    global _current
    _current = rt


def lambda_time_left(context: Any) -> float:
    """The time a handler may still use in this invocation: Lambda's remaining time minus
    the margin kept to end an attempt (a full invocation leaves exactly the longest timeout
    a Lambda service may declare)."""
    try:
        remaining = float(context.get_remaining_time_in_millis()) / 1000.0
    except AttributeError:
        remaining = float(services.JOB_FUNCTION_TIMEOUT_SECONDS)
    return remaining - services.END_MARGIN_SECONDS
