"""The callback Lambda's work: deliver one webhook event, record the attempt, and decide
when to try again. The message carries the event as rendered at the job's end, so every
retry (and every duplicate of the message) sends the very same event under one id."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import telemetry, webhooks
from .jobs import iso
from .messages import Malformed, Retry
from .ports import Conflict, JobStorePort, QueuePort
from .settings import Settings

if TYPE_CHECKING:
    from .tenants import TenantStore

log = logging.getLogger("jobgate.callbacks")
USER_AGENT = "Jobgate-Webhooks/1.0"
DEAD_LETTERED = "dead_lettered: the webhook message could not be processed"


def parse_message(body: str) -> dict[str, Any]:
    try:
        msg: dict[str, Any] = json.loads(body)
        for field in ("tenant", "jobId", "eventId", "url", "event"):
            if not isinstance(msg[field], str) or not msg[field]:
                raise ValueError(field)
    except (ValueError, TypeError, KeyError) as exc:
        raise Malformed(f"not a callback message: {exc!r}") from exc
    return msg


class Deliverer:
    def __init__(
        self, store: JobStorePort, tenants: TenantStore, dispatcher: QueuePort, settings: Settings,
        dlq_url: str, clock: Callable[[], float] = time.time,
        send: Callable[..., webhooks.Attempt] = webhooks.post,
        payload: Callable[[str], tuple[str, str]] = lambda event: ("application/json", event),
        timeout: float = webhooks.TIMEOUT_SECONDS,
    ):
        self.store, self.tenants, self.dispatcher, self.settings = store, tenants, dispatcher, settings
        self.dlq_url, self.clock, self.send, self.timeout = dlq_url, clock, send, timeout
        self.payload = payload  # (content type, body) for a stored event (compat/baw.py)

    def attempt(self, msg: dict[str, Any], tenant: Any, now: float) -> webhooks.Attempt:
        """Sign and send once. Whatever goes wrong here (a URL stored before today's
        rules, a bad secret, a result gone, a bug) is a failed attempt on the record, never
        an exception that would leave the webhook pending with no attempt and its message
        cycling."""
        started = time.monotonic()
        try:
            stamp = int(now)
            content_type, body_text = self.payload(msg["event"])
            headers = {
                "Content-Type": content_type, "User-Agent": USER_AGENT,
                "webhook-id": msg["eventId"], "webhook-timestamp": str(stamp),
                "webhook-signature": webhooks.sign(tenant.signing_secrets(now), msg["eventId"],
                                                   stamp, body_text),
            }
            return self.send(msg["url"], headers, body_text,
                             allow_private=self.settings.allow_private_callbacks,
                             timeout=self.timeout,
                             forbidden_targets=self.settings.forbidden_callback_targets)
        except Exception as exc:  # noqa: BLE001  (recorded as the attempt's error)
            log.exception("webhook attempt raised")
            return webhooks.Attempt(None, f"{type(exc).__name__}: {exc}",
                                    int((time.monotonic() - started) * 1000))

    def process(self, body: str) -> None:
        """Returns when the message may be deleted; raises Retry to try again later."""
        msg = parse_message(body)
        tenant_name, job_id = msg["tenant"], msg["jobId"]
        telemetry.bind(tenant=tenant_name, jobId=job_id)
        tenant = self.tenants.get_tenant_cached(tenant_name)
        if tenant is None:
            log.warning("callback for an unknown tenant dropped", extra={"tenant": tenant_name})
            return
        now = self.clock()
        attempt = self.attempt(msg, tenant, now)
        delivery = {"at": iso(now), "statusCode": attempt.status_code, "error": attempt.error,
                    "durationMs": attempt.duration_ms}
        job = self.store.record_delivery(tenant_name, job_id, delivery, delivered=attempt.ok,
                                         at=now)
        interval = tenant.callback_retry_interval or self.settings.callback_retry_interval_seconds
        max_retries = tenant.callback_max_retries
        if max_retries is None:
            max_retries = self.settings.callback_max_retries
        n = (job.callback_attempts - int(msg.get("base", 0))) if job else 0
        fields = {"tenant": tenant_name, "jobId": job_id, "eventId": msg["eventId"],
                  "attempt": n, "statusCode": attempt.status_code, "durationMs": attempt.duration_ms}
        telemetry.metric("CallbackAttempts")
        if job is None:
            log.info("webhook event no longer pending; duplicate message dropped", extra=fields)
            return
        if attempt.ok:
            log.info("webhook delivered", extra=fields)
            return
        telemetry.metric("CallbackFailures")
        if n - 1 < max_retries:
            delay = webhooks.retry_delay(n, interval, schedule=tenant.retry_schedule)
            log.warning("webhook attempt failed: %s; retry in %ss", attempt.error, delay,
                        extra={**fields, "error": attempt.error, "retryIn": delay})
            raise Retry(delay, attempt.error or "failed")
        log.error("webhook attempt failed: %s; no retries left", attempt.error,
                  extra={**fields, "error": attempt.error})
        # The job keeps every attempt, so the message is done with (as a job's is after its
        # last attempt); the DLQ is for messages that could not be processed at all.
        self.give_up(tenant_name, job_id, None)

    def give_up(self, tenant: str, job_id: str, error: str | None) -> bool:
        """Mark the webhook failed (once, if still pending) and count it given up."""
        try:
            self.store.set_callback_state(tenant, job_id, "failed", "pending", error=error)
        except Conflict:
            return False
        telemetry.metric("CallbacksGivenUp")
        return True

    def process_dead(self, body: str) -> None:
        """A callback message that exhausted its receives (the callbacks DLQ): whatever
        kept failing, its webhook must not stay pending for ever."""
        msg = parse_message(body)
        tenant, job_id = msg["tenant"], msg["jobId"]
        telemetry.bind(tenant=tenant, jobId=job_id)
        if self.give_up(tenant, job_id, DEAD_LETTERED):
            log.error("webhook message dead-lettered; callback marked failed",
                      extra={"tenant": tenant, "jobId": job_id, "eventId": msg["eventId"]})
        else:
            log.info("dead-lettered webhook message for a settled callback dropped",
                     extra={"tenant": tenant, "jobId": job_id})
