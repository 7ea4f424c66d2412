"""What follows a job's end: its webhook is queued, a chain's next job is created and
queued, a redelivery is sent. Idempotent: re-run whenever a message comes back after the
end (the worker, the worker routes and a cancel all call it)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from . import services
from .jobs import SUCCEEDED, Job
from .newjob import queued_job
from .objectkeys import content_key

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("jobgate")


class AfterEnd:
    """Reads the runtime's parts at each call (tests swap its settings)."""

    def __init__(self, rt: Runtime):
        self.rt = rt

    def after_end(self, job: Job, fresh: bool = True) -> None:
        """What follows a job's end. `fresh`: this caller made the terminal write. Otherwise
        (a message came back after the end) the webhook is queued again only if no attempt
        was recorded yet: once one was, its message exists and owns the retry schedule."""
        resend = fresh or job.callback_attempts == 0
        if job.callback_url and job.callback_state == "pending" and job.callback_event and resend:
            self.rt.dispatcher.send_callback(job.tenant, job.job_id, event_id(job),
                                             job.callback_url, job.callback_event)
        if job.status == SUCCEEDED and job.chain and job.next and not job.chain_started:
            self.start_next(job)

    def start_next(self, job: Job) -> None:
        """The chain's next job: its ID was fixed in the previous job's terminal write, so
        repeating this after a crash creates nothing twice."""
        step, now = job.chain[0], time.time()
        nxt = queued_job(
            job.tenant, job.next or "", step["service"], services.get(step["service"]),
            self.rt.settings, now, input=step.get("input"),
            variables=dict(step.get("variables") or {}), log_level=job.log_level,
            callback_url=job.callback_url, chain=job.chain[1:], previous=job.job_id,
            base_url=job.base_url, content_type=job.result_type,
        )
        if job.result_key:
            nxt.content_key = content_key(job.tenant, nxt.job_id)
            self.rt.blobs.copy(job.result_key, nxt.content_key)
        self.rt.store.create_if_absent(nxt)
        self.rt.dispatcher.send_job(job.tenant, nxt.job_id, nxt.service)
        self.rt.store.update_fields(job.tenant, job.job_id, {"chainStarted": True})

    def redeliver(self, job: Job, previous_state: str) -> None:
        """Send the stored event again, as a schedule of its own (retries count from now).
        If the message cannot be sent, the webhook goes back to its previous state: a
        `pending` with no message would refuse every later redelivery (409)."""
        try:
            self.rt.dispatcher.send_callback(job.tenant, job.job_id, event_id(job),
                                             job.callback_url or "", job.callback_event or "",
                                             base=job.callback_attempts)
        except Exception:
            try:
                self.rt.store.set_callback_state(job.tenant, job.job_id, previous_state, "pending")
            except Exception:  # noqa: BLE001  (the original error is the one to report)
                log.exception("could not restore the webhook state after a failed redelivery")
            raise


def event_id(job: Job) -> str:
    """One event per job end, the same on every retry (no '.' for Standard Webhooks)."""
    return f"evt_{job.job_id}"
