"""Pure rules of worker jobs (no AWS here): the sparse claim index's keys, lease tokens,
lease and run deadlines, what a failed attempt becomes, and when the watchdog looks again.

A job of a `runs_on="worker"` service carries `claimKey` (`W#<service>`) and `availableAt`
while it can be claimed: queued → the time it may run (submit or retry time); running →
its lease's end. A claim queries `claimKey = W#svc AND availableAt <= now`, oldest first,
and takes the first item with a conditional write: O(1) per job, no scan. Every terminal
write removes both keys, so the index holds only live jobs."""

from __future__ import annotations

import base64
import binascii
import math
import uuid

from .jobs import Job, retry_delay
from .limits import LIFECYCLE_RESERVE

CLAIM_PREFIX = "W#"
NOT_RETRIED = frozenset({"invalid_input", "fatal"})  # codes a worker fails a job for good with
WATCH_MIN_SECONDS = 60  # the watchdog's first look, and the shortest pause between looks
REFRESH_AT_RECEIVE = 8  # jobs queue maxReceiveCount is 10: replace the message before it
SQS_MAX_DELAY = 900

# A worker job's log lines are kept in the item while it runs, counted in bytes (`logBytes`,
# DynamoDB's own measure: UTF-8 plus one byte a list element) and capped by the room
# limits.py reserves for the log. The running lines and the final inline log never share
# the item (the terminal write swaps one for the other), so one reserve covers both.
LOG_ITEM_BYTES = LIFECYCLE_RESERVE["log"] - 256  # less the "log is full" line and the names
LOG_FULL = "[jobgate] this job's log is full (a worker job keeps {} bytes): later lines are dropped"
MAX_SHUTDOWNS = 10  # worker_shutdown attempts given back per job; later ones count


def claim_key(service: str) -> str:
    return f"{CLAIM_PREFIX}{service}"


def make_claimable(job: Job, runs_on: str, now: float) -> Job:
    """Give a new worker-service job its claim-index keys (a no-op for Lambda services)."""
    if runs_on == "worker":
        job.claim_key, job.available_at = claim_key(job.service), now
    return job


def new_token(tenant: str) -> str:
    """A lease token that names its job's tenant (the worker routes carry only the job ID;
    the random part is what proves the lease, checked by the conditional write)."""
    name = base64.urlsafe_b64encode(tenant.encode()).decode().rstrip("=")
    return f"{name}.{uuid.uuid4().hex}"


def token_tenant(token: object) -> str | None:
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 200:
        return None
    name, _, secret = token.partition(".")
    if len(secret) != 32 or not name:
        return None
    try:
        tenant = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return tenant or None


def run_deadline(now: float, service_timeout: int, max_runtime: int) -> float:
    """An attempt on a worker ends by then, however often it heart-beats."""
    return now + min(service_timeout, max_runtime)


def lease_end(now: float, lease_seconds: int, deadline: float | None) -> float:
    until = now + lease_seconds
    return until if deadline is None else min(until, deadline)


def lapsed(job: Job, now: float) -> bool:
    return job.status == "running" and (job.lease_until or 0) < now


def lapse_error(job: Job) -> tuple[str, str]:
    """Why a lapsed attempt ended: it hit the run deadline, or its worker went silent."""
    if job.run_deadline is not None and (job.lease_until or 0) >= job.run_deadline:
        return "timed_out", "the attempt ran past its maximum runtime on a worker"
    return "lease_expired", "the worker stopped heart-beating (its lease lapsed)"


def unheard(job: Job, lease_seconds: int) -> bool:
    """No heartbeat ever extended this lease: the claim's answer may never have reached a
    worker (a long poll whose worker died or lost its connection still takes a job). Such
    a lapse gives its attempt back, as a worker_shutdown does (at most MAX_SHUTDOWNS)."""
    if job.claimed_at is None or job.lease_until is None:
        return False
    return abs(job.lease_until - lease_end(job.claimed_at, lease_seconds, job.run_deadline)) < 0.01


def retry_in(job: Job, code: str, retry_after: int | None, base: int,
             given_back: bool = False) -> int | None:
    """Seconds until a failed attempt may run again, or None when the job fails for good:
    attempts used up, or a code that is not retried and no explicit retryAfterSeconds.
    `given_back`: the attempt does not count (a worker shut down under it), so it is
    retried whatever the attempts, by default at once."""
    if given_back:
        return max(0, retry_after or 0)
    if job.attempts >= job.max_attempts:
        return None
    if retry_after is not None:
        return max(0, retry_after)
    if code in NOT_RETRIED:
        return None
    return retry_delay(job.attempts, base)


def watch_delay(job: Job, now: float, max_runtime: int, max_visibility: int) -> int:
    """When the watchdog looks at a running job again: just after its lease ends, but no
    sooner than the attempt's age (doubling) up to a ceiling, so a day-long job costs about
    30 looks, not 1,440. A lease that lapses with no worker polling is noticed within that
    pause; with workers polling, the next claim takes it over at once."""
    lease_left = (job.lease_until or now) - now
    age = now - (job.claimed_at or now)
    ceiling = max(3600, max_runtime // 24)
    pause = max(lease_left + 1, min(max(age, WATCH_MIN_SECONDS), ceiling))
    if job.run_deadline is not None:
        pause = min(pause, max(1.0, job.run_deadline - now + 1))
    return int(min(max_visibility, math.ceil(pause)))


def log_bytes(lines: list[str]) -> int:
    """What `lines` take in the item's logLines list (UTF-8, plus a byte per element)."""
    return sum(len(line.encode("utf-8", "surrogatepass")) + 1 for line in lines)


def fitting(kept: list[str], lines: list[str]) -> list[str]:
    """The first of `lines` that still fit in the item's log after `kept`."""
    room = LOG_ITEM_BYTES - log_bytes(kept)
    out = []
    for line in lines:
        room -= log_bytes([line])
        if room < 0:
            break
        out.append(line)
    return out
