"""Tenants and their API keys. Keys are stored as SHA-256 digests (they are random,
high-entropy tokens, so a fast hash is enough); a lookup is one GetItem, cached for a
few seconds so a revoked key stops working almost at once."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .store import deserialize, serialize

CACHE_SECONDS = 5.0


@dataclass
class Tenant:
    name: str
    webhook_secrets: list[str] = field(default_factory=list)  # current first
    callback_retry_interval: int | None = None
    callback_max_retries: int | None = None
    max_active: int | None = None


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def parse_authorization(header: str | None) -> tuple[str | None, str]:
    """(tenant named by Basic auth or None, api key). Raises 401 when absent or garbled."""
    if not header:
        raise unauthorized("credentials required: Authorization: Bearer <api key>")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return None, value
    if scheme.lower() == "basic" and value:
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise unauthorized("malformed Basic credentials") from None
        if sep and user and password:
            return user, password
    raise unauthorized("unsupported Authorization header")


def unauthorized(message: str = "invalid credentials") -> ApiError:
    return ApiError(401, "unauthorized", message,
                    headers={"WWW-Authenticate": 'Bearer, Basic realm="jobgate"'})


class TenantStore:
    def __init__(self, client: Any, table: str, cache_seconds: float = CACHE_SECONDS):
        self._db, self._table, self._ttl = client, table, cache_seconds
        self._cache: dict[str, tuple[float, Tenant | None]] = {}
        self._tenants: dict[str, tuple[float, Tenant | None]] = {}
        self._lock = threading.Lock()

    def put_tenant(self, tenant: Tenant) -> None:
        values: dict[str, Any] = {"pk": f"TENANT#{tenant.name}", "sk": "TENANT",
                                  "name": tenant.name, "webhookSecrets": tenant.webhook_secrets}
        for attr, value in (("callbackRetryInterval", tenant.callback_retry_interval),
                            ("callbackMaxRetries", tenant.callback_max_retries),
                            ("maxActive", tenant.max_active)):
            if value is not None:
                values[attr] = value
        self._db.put_item(TableName=self._table, Item=serialize(values))

    def add_key(self, tenant: str, api_key: str, created_at: float | None = None) -> str:
        digest = key_digest(api_key)
        self._db.put_item(TableName=self._table, Item=serialize({
            "pk": f"KEY#{digest}", "sk": "KEY", "tenant": tenant,
            "createdAt": created_at or time.time()}))
        return digest

    def get_tenant(self, name: str) -> Tenant | None:
        out = self._db.get_item(TableName=self._table,
                                Key=serialize({"pk": f"TENANT#{name}", "sk": "TENANT"}))
        if "Item" not in out:
            return None
        d = deserialize(out["Item"])
        return Tenant(name=d["name"], webhook_secrets=list(d.get("webhookSecrets", [])),
                      callback_retry_interval=d.get("callbackRetryInterval"),
                      callback_max_retries=d.get("callbackMaxRetries"),
                      max_active=d.get("maxActive"))

    def get_tenant_cached(self, name: str) -> Tenant | None:
        now = time.monotonic()
        with self._lock:
            hit = self._tenants.get(name)
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        tenant = self.get_tenant(name)
        with self._lock:
            self._tenants[name] = (now, tenant)
        return tenant

    def authenticate(self, authorization: str | None) -> Tenant:
        named, api_key = parse_authorization(authorization)
        digest = key_digest(api_key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit and now - hit[0] < self._ttl:
            tenant = hit[1]
        else:
            tenant = self._resolve(digest)
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (now, tenant)
        if tenant is None or (named is not None and not hmac.compare_digest(named, tenant.name)):
            raise unauthorized()
        return tenant

    def _resolve(self, digest: str) -> Tenant | None:
        out = self._db.get_item(TableName=self._table,
                                Key=serialize({"pk": f"KEY#{digest}", "sk": "KEY"}))
        if "Item" not in out:
            return None
        return self.get_tenant_cached(deserialize(out["Item"])["tenant"])
