"""Listing cursors: the last job ID of a page and the query's filters, signed (HMAC-SHA256
with the stage's cursor secret, chalicelib/cursor_secret.py) over the tenant, so a cursor
is good for one tenant's one query only and cannot be forged or edited."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable

from .errors import bad_request, unavailable
from .ids import is_job_id
from .ports import Unavailable


class Cursors:
    def __init__(self, secret: bytes | Callable[[], bytes]):
        self.secret = secret  # bytes, or read when first needed (a managed secret)

    def _signature(self, payload: bytes, tenant: str) -> bytes:
        """Over the tenant and the payload (job ID and filters): a cursor is good for one
        tenant's one query only."""
        try:
            key = self.secret() if callable(self.secret) else self.secret
        except Unavailable as exc:
            raise unavailable(f"listing cursors are unavailable ({exc.code})") from None
        message = json.dumps(["jobgate-cursor/1", tenant]).encode() + b"\n" + payload
        return hmac.new(key, message, hashlib.sha256).digest()[:16]

    def make(self, job_id: str, tenant: str, status: str | None, service: str | None) -> str:
        payload = json.dumps([job_id, status, service], separators=(",", ":")).encode()
        sig = self._signature(payload, tenant)
        return base64.urlsafe_b64encode(sig + payload).decode().rstrip("=")

    def read(self, cursor: str, tenant: str, status: str | None, service: str | None) -> str:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            sig, payload = raw[:16], raw[16:]
            if not hmac.compare_digest(sig, self._signature(payload, tenant)):
                raise ValueError("signature")  # forged, tampered, or another tenant's
            job_id, c_status, c_service = json.loads(payload)
            if not isinstance(job_id, str):
                raise TypeError("job id")
        except (ValueError, TypeError):
            raise bad_request("invalid cursor", "invalid_cursor") from None
        if (c_status, c_service) != (status, service) or not is_job_id(job_id):
            raise bad_request("the cursor belongs to another query", "invalid_cursor")
        return job_id
