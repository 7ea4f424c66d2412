"""Checking a Jobgate webhook (Standard Webhooks signature) before trusting it."""

from __future__ import annotations

import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import WebhookVerificationFailed
from .models import Job, WebhookEvent


def verify_webhook(headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes | str,
                   secret: str | Sequence[str]) -> WebhookEvent:
    """Verify a webhook request and return its event.

    `headers` are the request's headers (any mapping or (name, value) pairs, any case),
    `body` the raw body exactly as received (do not re-serialize parsed JSON), `secret`
    the tenant's `whsec_...` secret, or several while rotating one. Checks the
    `webhook-signature` HMAC and that `webhook-timestamp` is within 5 minutes.
    Raises `WebhookVerificationFailed` otherwise, and `ValueError` for a malformed secret.
    """
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    pairs = headers.items() if isinstance(headers, Mapping) else headers
    hdrs = {str(k).lower(): str(v) for k, v in pairs}
    try:
        text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
    except UnicodeDecodeError:
        raise WebhookVerificationFailed("the body is not UTF-8") from None
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("no webhook secret given")
    verifiers = []
    for s in secrets:
        try:
            verifiers.append(Webhook(s))
        except (binascii.Error, ValueError, TypeError, RuntimeError) as exc:
            raise ValueError(f"malformed webhook secret (expected whsec_<base64>): {exc}") from None
    reason = "no matching signature found"
    for verifier in verifiers:
        try:
            verifier.verify(text, hdrs, json_parse=False)
        except WebhookVerificationError as exc:
            reason = str(exc) or reason
            continue
        except (ValueError, TypeError, binascii.Error):  # a garbled signature header
            reason = "malformed webhook-signature header"
            continue
        return _event(hdrs.get("webhook-id", ""), text)
    raise WebhookVerificationFailed(f"webhook rejected: {reason}")


def _event(event_id: str, text: str) -> WebhookEvent:
    try:
        data: Any = json.loads(text)
    except ValueError:
        raise WebhookVerificationFailed("signed, but the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict) \
            or "jobId" not in data["data"]:
        raise WebhookVerificationFailed("signed, but the body is not a Jobgate event")
    return WebhookEvent(id=event_id, type=str(data.get("type", "")),
                        timestamp=str(data.get("timestamp", "")), job=Job.from_dict(data["data"]),
                        raw=data)
