"""What the lifecycle (api.py, worker.py, callbacks.py, workers.py) needs from storage and
messaging, in its own words: the job store, the queue, the blobs, worker leases and worker
keys as `Protocol`s, and the exceptions they raise. The AWS adapters (store.py, queue.py,
blobs.py, leasestore.py, workerkeys.py, capacity.py, tenants.py) are the only modules that
know botocore; they turn its errors into these, so the lifecycle
never imports boto3 or botocore (tests/test_layers.py checks the import graph)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .blobs import BlobInfo
    from .jobs import Job
    from .store import Page
    from .workerkeys import WorkerKey


class Conflict(Exception):
    """A conditional write lost: the job is not in the state the caller expected (`job`:
    the job as it is, None when there is none)."""

    def __init__(self, job: Job | None):
        super().__init__("job state changed")
        self.job = job


class RunIdTaken(Exception):
    """The runId already names a job (`job_id`, submitted with `request_hash`)."""

    def __init__(self, job_id: str, request_hash: str):
        super().__init__(job_id)
        self.job_id = job_id
        self.request_hash = request_hash


class Unavailable(Exception):
    """A backing service could not answer now (after the SDK's retries): try again later.
    `code` is the service's error code, for logs and the 503's message."""

    def __init__(self, code: str, message: str = ""):
        super().__init__(message or code)
        self.code = code


class StoreUnavailable(Unavailable):
    """DynamoDB (the job store, tenants, the waiting count) did not answer."""


class QueueUnavailable(Unavailable):
    """SQS did not answer."""


class BlobsUnavailable(Unavailable):
    """S3 did not answer."""


T = TypeVar("T")


def translating(unavailable: type[Unavailable], conflicts: bool = False
                ) -> Callable[[type[T]], type[T]]:
    """Class decorator for an adapter: every public method raises `unavailable` instead of
    botocore's errors (with `conflicts`, a failed condition it did not handle itself is a
    Conflict, as every other lost conditional write of the job store)."""

    def decorate(cls: type[T]) -> type[T]:
        for name, method in list(vars(cls).items()):
            if not name.startswith("_") and callable(method) \
                    and not isinstance(method, staticmethod | classmethod):
                setattr(cls, name, _translated(method, unavailable, conflicts))
        return cls

    return decorate


def _translated(method: Callable[..., Any], unavailable: type[Unavailable], conflicts: bool
                ) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            # Looked up, not imported at the top: importing an adapter loads no botocore,
            # and an error botocore raised means botocore is loaded.
            errors = sys.modules.get("botocore.exceptions")
            if errors is None:
                raise
            BotoCoreError, ClientError = errors.BotoCoreError, errors.ClientError
            if isinstance(exc, ClientError):
                code = str(exc.response.get("Error", {}).get("Code", "error"))
                if conflicts and code == "ConditionalCheckFailedException":
                    raise Conflict(None) from exc
                raise unavailable(code, str(exc)) from exc
            if isinstance(exc, BotoCoreError):
                raise unavailable(type(exc).__name__, str(exc)) from exc
            raise

    return call


class JobStorePort(Protocol):
    """Jobs, each change a conditional write (store.JobStore on DynamoDB)."""

    def get(self, tenant: str, job_id: str, now: float, consistent: bool = True
            ) -> Job | None: ...
    def list(self, tenant: str, now: float, *, status: str | None, service: str | None,
             limit: int, after: str | None) -> Page: ...
    def count_active(self, tenant: str, cap: int, now: float) -> int: ...
    # The tenant quota: a slot per queued or running job a client submitted (Job.slot),
    # taken at submit, given back by the job's terminal write (finish, cancel).
    def reserve_slot(self, tenant: str, job_id: str, limit: int
                     ) -> tuple[int | None, int]: ...
    def release_slot(self, tenant: str, slot: int) -> None: ...
    def repair_slots(self, tenant: str, counted: int, now: float) -> int: ...
    def create(self, job: Job) -> None: ...
    def create_if_absent(self, job: Job) -> None: ...
    def run_id_owner(self, tenant: str, run_id: str) -> tuple[str, str] | None: ...
    def forget(self, job: Job) -> None: ...
    def claim(self, tenant: str, job_id: str, token: str, lease_seconds: float,
              now: float) -> Job: ...
    def heartbeat(self, tenant: str, job_id: str, token: str, values: dict[str, Any]
                  ) -> Job: ...
    def finish(self, tenant: str, job_id: str, token: str | None, status: str,
               values: dict[str, Any], now: float) -> Job: ...
    def release(self, tenant: str, job_id: str, token: str, code: str, message: str,
                retry_at: float | None = None) -> Job: ...
    def cancel(self, tenant: str, job_id: str, now: float, values: dict[str, Any]) -> Job: ...
    def record_delivery(self, tenant: str, job_id: str, delivery: dict[str, Any],
                        delivered: bool, at: float) -> Job | None: ...
    def set_callback_state(self, tenant: str, job_id: str, state: str, expect: str,
                           error: str | None = None) -> Job: ...
    def update_fields(self, tenant: str, job_id: str, values: dict[str, Any]) -> None: ...
    def delete(self, tenant: str, job_id: str) -> Job: ...


class CapacityPort(Protocol):
    """The count of jobs waiting, the back-pressure of submits (capacity.QueueCapacity)."""

    def reserve(self, job_id: str, limit: int) -> tuple[bool, int]: ...
    def release(self, job_id: str, limit: int, places: int = 1) -> int: ...
    def repair(self, counted: int, queue_holds: int, limit: int) -> int: ...


class QueuePort(Protocol):
    """Job and callback messages (queue.Dispatcher on SQS)."""

    jobs_url: str
    callbacks_url: str

    @property
    def capacity(self) -> CapacityPort | None: ...  # None: no back-pressure

    def send_job(self, tenant: str, job_id: str, service: str | None = None,
                 delay: int = 0) -> None: ...
    def send_callback(self, tenant: str, job_id: str, event_id: str, url: str, event: str,
                      base: int = 0) -> None: ...
    def send_raw(self, queue_url: str, body: str) -> None: ...
    def retry_later(self, queue_url: str, receipt_handle: str, seconds: int) -> None: ...
    def delete_batch(self, queue_url: str, receipt_handles: list[str]) -> None: ...
    def url_of(self, name: str) -> str: ...
    def messages_held(self, now: float | None = None) -> int: ...


class BlobPort(Protocol):
    """A job's documents, results and logs (blobs.BlobStore on S3)."""

    def put(self, key: str, body: bytes, content_type: str) -> None: ...
    def upload(self, key: str, stream: IO[bytes], content_type: str) -> int: ...
    def copy(self, source: str, target: str) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def head(self, key: str) -> BlobInfo | None: ...
    def delete(self, *keys: str | None) -> None: ...
    def presign(self, key: str, seconds: int, filename: str | None = None) -> str: ...
    def presign_put(self, key: str, seconds: int) -> str: ...


class LeaseStorePort(Protocol):
    """Worker jobs' claim index and lease writes (leasestore.LeaseStore on DynamoDB): each
    write conditional on the lease, a lost condition a Conflict carrying the job as it is."""

    def candidates(self, claim_key: str, now: float, limit: int) -> list[tuple[str, str]]: ...
    def count_due(self, claim_key: str, now: float, cap: int) -> int: ...
    def claim(self, tenant: str, job_id: str, claim_key: str, token: str, now: float,
              until: float, deadline: float) -> Job: ...
    def heartbeat(self, tenant: str, job_id: str, token: str, now: float, until: float,
                  values: dict[str, Any], variables: dict[str, str], lines: list[str],
                  services: tuple[str, ...], check_room: bool = True) -> Job: ...
    def release(self, tenant: str, job_id: str, token: str, now: float, available_at: float,
                code: str, message: str, lines: list[str], services: tuple[str, ...],
                lapsed: bool = False, kept: list[str] | None = None,
                given_back: bool = False) -> Job: ...
    def finish(self, tenant: str, job_id: str, token: str, status: str, values: dict[str, Any],
               now: float, services: tuple[str, ...], lapsed: bool = False) -> Job: ...
    def set_content_key(self, tenant: str, job_id: str, key: str) -> None: ...
    def drop_claim(self, tenant: str, job_id: str) -> None: ...


class WorkerKeyPort(Protocol):
    """Worker keys, stored as digests (workerkeys.WorkerKeyStore on DynamoDB); a missing,
    malformed or revoked key is tenants.Unauthorized."""

    def add(self, key: str, services: list[str], label: str = "",
            created_at: float | None = None) -> str: ...
    def list(self) -> list[WorkerKey]: ...
    def revoke(self, kid: str, now: float | None = None) -> bool: ...
    def authenticate(self, authorization: str | None) -> WorkerKey: ...
