"""The SQS handlers' work on one record each: a job message (run on Lambda, or watched for
a worker service), a dead job message, a callback message, a dead callback message. What a
handler cannot do now is put back (Retry: hidden for the delay, reported failed);
what can never be done goes to the dead-letter queue (Malformed)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import services
from .batch import Record
from .messages import MAX_VISIBILITY, Malformed, Retry, parse_job_message

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("jobgate")


class RecordHandlers:
    """Reads the runtime's parts at each call (tests swap its settings)."""

    def __init__(self, rt: Runtime):
        self.rt = rt

    def handle_job_record(self, record: Record, time_left: float | None = None) -> None:
        """`time_left`: what the invocation may still spend on a handler (lambda_time_left)."""
        left = lambda_time_left(None) if time_left is None else time_left

        def process(body: str) -> None:
            if self.rt.workers.owns(body):  # a worker service's job: watched here, never run
                self.rt.workers.watch(body, record.receive_count)
            else:
                self.rt.worker.process(body, left)

        self._handle(record, process, self.rt.settings.jobs_dlq_url)

    def handle_dead_job(self, record: Record) -> None:
        """A job message that exhausted its receives: its job must not stay queued/running."""
        try:
            msg = parse_job_message(record.body)
        except Malformed:
            # Keep it in the DLQ for an operator to look at; hide it as long as SQS allows.
            self.rt.dispatcher.retry_later(self.queue_url(record.queue_name),
                                        record.receipt_handle, MAX_VISIBILITY)
            raise Deferred("malformed message parked in the DLQ") from None
        now = self.rt.worker.clock()
        self._handle(record, lambda _: self.rt.worker.settle(
            self.rt.store.get(msg.tenant, msg.job_id, now), now, "dead_lettered",
            "the job message could not be processed"), self.rt.settings.jobs_dlq_url)

    def handle_callback_record(self, record: Record) -> None:
        self._handle(record, self.rt.deliverer.process, self.rt.settings.callbacks_dlq_url)

    def handle_dead_callback(self, record: Record) -> None:
        """A callback message that exhausted its receives: its webhook must not stay
        `pending` for ever; it is marked failed and counted given up (CallbacksGivenUp)."""
        from .callbacks import parse_message

        try:
            parse_message(record.body)
        except Malformed:
            # Keep it in the DLQ for an operator to look at; hide it as long as SQS allows.
            self.rt.dispatcher.retry_later(self.queue_url(record.queue_name),
                                        record.receipt_handle, MAX_VISIBILITY)
            raise Deferred("malformed message parked in the DLQ") from None
        self.rt.deliverer.process_dead(record.body)

    def _handle(self, record: Record, process: Callable[[str], None], dlq_url: str) -> None:
        """Retry → hide the message for the delay and report it failed; Malformed → DLQ."""
        try:
            process(record.body)
        except Retry as retry:
            self.rt.dispatcher.retry_later(self.queue_url(record.queue_name),
                                        record.receipt_handle, retry.delay)
            raise Deferred(f"retry in {retry.delay}s: {retry.reason}") from None
        except Malformed as exc:
            log.error("malformed message sent to the DLQ: %s", exc)
            self.rt.dispatcher.send_raw(dlq_url, record.body)

    def queue_url(self, name: str) -> str:
        for url in (self.rt.settings.jobs_queue_url, self.rt.settings.callbacks_queue_url,
                    self.rt.settings.jobs_dlq_url, self.rt.settings.callbacks_dlq_url):
            if url.rstrip("/").rsplit("/", 1)[-1] == name:
                return url
        return self.rt.dispatcher.url_of(name)


class Deferred(Exception):
    """A record put back on purpose (not an error worth a stack trace)."""

    expected = True


def lambda_time_left(context: Any) -> float:
    """The time a handler may still use in this invocation: Lambda's remaining time minus
    the margin kept to end an attempt (a full invocation leaves exactly the longest timeout
    a Lambda service may declare)."""
    try:
        remaining = float(context.get_remaining_time_in_millis()) / 1000.0
    except AttributeError:
        remaining = float(services.JOB_FUNCTION_TIMEOUT_SECONDS)
    return remaining - services.END_MARGIN_SECONDS
