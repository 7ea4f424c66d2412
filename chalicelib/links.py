"""Result links: the `resultUrl` a client keeps. A presigned S3 URL minted by Lambda dies
with the role's session (hours at most), so the link is ours instead: it names the tenant,
the job, the version of its result (a digest of the result's S3 key) and when it expires
(`validUntil`), HMAC-signed with a per-deployment secret. Whoever holds it may download that
one result until then, without credentials; following it answers 303 to a fresh, short
presigned URL. Pure logic: no AWS here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass

SECRET_ENV = "JOBGATE_LINK_SECRET"
_DOMAIN = b"jobgate-result-link-v1\0"  # this key signs nothing else
_MAC_BYTES = 20
_PROCESS_SECRET = secrets.token_bytes(32)


class InvalidLink(ValueError):
    """Not a link we signed (malformed or tampered with)."""


class MissingSecret(RuntimeError):
    """On AWS without JOBGATE_LINK_SECRET: no link is made (fail closed)."""


@dataclass(frozen=True)
class Link:
    tenant: str
    job_id: str
    version: str
    expires: int


def link_secret(configured: str, env: dict[str, str] | None = None) -> bytes:
    """The signing key: the configured secret; off AWS without one, a random key of this
    process (links die with it: fine for tests); on AWS without one, MissingSecret."""
    if configured:
        return configured.encode()
    env = dict(os.environ if env is None else env)
    if env.get("AWS_LAMBDA_FUNCTION_NAME"):
        raise MissingSecret(f"{SECRET_ENV} is not set: result links cannot be signed")
    return _PROCESS_SECRET


def derive(stage_secret: bytes) -> bytes:
    """A link key of its own from the stage's secret: a leaked link key reveals nothing about
    the cursor key, and the other way round."""
    return hmac.new(stage_secret, _DOMAIN + b"key", hashlib.sha256).digest()


def result_version(result_key: str) -> str:
    """Which result a link names: a job's result key changes if it is ever rewritten."""
    return hashlib.sha256(result_key.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not text or len(text) > 2048 or not text.isascii():
        raise InvalidLink("malformed")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise InvalidLink("malformed") from None


def sign(key: bytes, link: Link) -> str:
    payload = json.dumps([link.tenant, link.job_id, link.version, link.expires],
                         separators=(",", ":")).encode()
    mac = hmac.new(key, _DOMAIN + payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(key: bytes, token: str) -> Link:
    """The link a token names; InvalidLink unless we signed it exactly so. Expiry is the
    caller's to check (it answers 410, not 403)."""
    head, dot, tail = token.partition(".")
    if not dot:
        raise InvalidLink("malformed")
    payload, mac = _unb64(head), _unb64(tail)
    good = hmac.new(key, _DOMAIN + payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, good):
        raise InvalidLink("bad signature")
    try:
        tenant, job_id, version, expires = json.loads(payload)
    except (ValueError, TypeError):
        raise InvalidLink("malformed") from None
    if not (isinstance(tenant, str) and isinstance(job_id, str) and isinstance(version, str)
            and isinstance(expires, int)):
        raise InvalidLink("malformed")
    return Link(tenant, job_id, version, expires)
