"""A tenant's quota of active jobs: its queued + running jobs, counted on the status index
(JobsApi._check_capacity answers 429 above the tenant's limit)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .ports import JobStorePort


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
