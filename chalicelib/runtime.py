"""Wiring: settings, AWS clients and the objects built on them, created once per process
and shared by every handler (tests build their own with `build`). What follows a job's
end is after_end.py; the SQS handlers' work on a record is records.py."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from . import cursor_secret, limits
from .api import JobsApi
from .blobs import BlobStore
from .capacity import QueueCapacity
from .connections import Clients, create_clients
from .queue import Dispatcher
from .settings import Settings
from .store import JobStore, job_to_item
from .tenants import TenantStore
from .views import JobView

if TYPE_CHECKING:
    from .after_end import AfterEnd
    from .callbacks import Deliverer
    from .ports import LeaseStorePort, WorkerKeyPort
    from .records import RecordHandlers
    from .worker import Worker
    from .workers import WorkerApi



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
                      after_end=self.ends.after_end)

    @cached_property
    def ends(self) -> AfterEnd:
        """What follows a job's end (webhook, a chain's next job, a redelivery)."""
        from .after_end import AfterEnd

        return AfterEnd(self)

    @cached_property
    def records(self) -> RecordHandlers:
        """The SQS handlers' work on one record."""
        from .records import RecordHandlers

        return RecordHandlers(self)

    @cached_property
    def leases(self) -> LeaseStorePort:
        from .leasestore import LeaseStore

        return LeaseStore(self.clients.dynamodb, self.settings.table_name)

    @cached_property
    def worker_keys(self) -> WorkerKeyPort:
        from .workerkeys import WorkerKeyStore

        return WorkerKeyStore(self.clients.dynamodb, self.settings.table_name)

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


def build(settings: Settings, clients: Clients, env: Mapping[str, str] | None = None) -> Runtime:
    """`env` (default: the process environment) names the cursor secret (cursor_secret)."""
    store = JobStore(clients.dynamodb, settings.table_name)
    blobs = BlobStore(clients.s3, settings.bucket_name)
    dispatcher = Dispatcher(clients.sqs, settings.jobs_queue_url, settings.callbacks_queue_url,
                            capacity=QueueCapacity(clients.dynamodb, settings.table_name))
    tenants = TenantStore(clients.dynamodb, settings.table_name)
    return assemble(settings, clients, store, blobs, dispatcher, tenants, env)


def assemble(settings: Settings, clients: Clients, store: JobStore, blobs: BlobStore,
             dispatcher: Dispatcher, tenants: TenantStore,
             env: Mapping[str, str] | None = None) -> Runtime:
    """A runtime on the adapters given (build's AWS ones; chalicelib/memory.py's)."""
    secret = cursor_secret.resolve(os.environ if env is None else env, settings.region)
    view = JobView(blobs, settings, tenant_of=tenants.get_tenant_cached, stage_secret=secret)
    api = JobsApi(store, blobs, dispatcher, settings, view, secret,
                  item_size=lambda job: limits.item_size(job_to_item(job)))
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
