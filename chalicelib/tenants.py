"""Tenants, their API keys and webhook secrets.

Keys are random tokens stored only as SHA-256 digests (high-entropy, so a fast hash is
enough): `KEY#<digest>` answers "whose key is this" in one GetItem, and a twin item in
the tenant's partition lists the tenant's keys. Lookups are cached for a few seconds, so
a revoked key stops working almost at once. During a secret rotation both secrets sign.

Tenant names are slugs (`TENANT_NAME`), checked wherever a tenant is created: they end up
in keys, object names, Basic credentials (`name:key`) and logs. Keys built from a name are
also percent-encoded (`store.part`), so even a name that slipped past the check cannot
reach another tenant's items."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .ports import StoreUnavailable, translating
from .store import assignments, deserialize, part, serialize, update_expression

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CACHE_SECONDS = 5.0
TENANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TENANT_NAME_RULE = "tenant names are 1-64 letters, digits, '-' or '_'"


def check_tenant_name(name: str) -> str:
    """The name, when it is a slug; ValueError otherwise."""
    if not isinstance(name, str) or not TENANT_NAME.fullmatch(name):
        raise ValueError(f"{TENANT_NAME_RULE}, got {name!r}")
    return name


@dataclass
class Tenant:
    name: str
    webhook_secrets: list[str] = field(default_factory=list)  # current first
    callback_retry_interval: int | None = None
    callback_max_retries: int | None = None
    max_active: int | None = None
    rotation_ends_at: float | None = None  # the previous secret signs until then
    # Compatibility policies (docs/api.md "Compatibility routes"); None = our default.
    retry_schedule: str | None = None  # "fixed" (IBM BAW) or "exponential"
    callback_body: str | None = None  # "outputs": the result itself instead of the event
    callback_format: str | None = None  # "shoptet": Shoptet's job:finished body
    starfish_jobs: dict[str, str] = field(default_factory=dict)  # Starfish jobID -> service

    def signing_secrets(self, now: float) -> list[str]:
        """The current secret, plus the previous one while a rotation is open."""
        if self.rotation_ends_at is not None and now < self.rotation_ends_at:
            return self.webhook_secrets[:2]
        return self.webhook_secrets[:1]


@dataclass
class KeyInfo:
    key_id: str
    tenant: str
    created_at: float
    label: str = ""
    revoked_at: float | None = None


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_id(digest: str) -> str:
    """A public handle for a key (never enough to use it)."""
    return digest[:12]


def new_api_key() -> str:
    return "jg_" + secrets.token_urlsafe(24)


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


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


class Unauthorized(Exception):
    """Credentials missing, garbled or unknown (app.py answers 401 with `challenge` in
    WWW-Authenticate). A domain error: this module knows no HTTP."""

    def __init__(self, message: str, challenge: str = 'Bearer, Basic realm="jobgate"'):
        super().__init__(message)
        self.message, self.challenge = message, challenge


def unauthorized(message: str = "invalid credentials") -> Unauthorized:
    return Unauthorized(message)


def tenant_pk(name: str) -> str:
    return f"TENANT#{part(name)}"


def _policy_items(tenant: Tenant) -> list[tuple[str, Any]]:
    """The compatibility policies as stored attributes (unset ones are None)."""
    return [("retrySchedule", tenant.retry_schedule), ("callbackBody", tenant.callback_body),
            ("callbackFormat", tenant.callback_format),
            ("starfishJobs", tenant.starfish_jobs or None)]


def _tenant_key(name: str) -> dict[str, Any]:
    return serialize({"pk": tenant_pk(name), "sk": "TENANT"})


@translating(StoreUnavailable)  # botocore's errors stay in this module
class TenantStore:
    def __init__(self, client: DynamoDBClient, table: str, cache_seconds: float = CACHE_SECONDS):
        self._db, self._table, self._ttl = client, table, cache_seconds
        self._cache: dict[str, tuple[float, Tenant | None]] = {}
        self._tenants: dict[str, tuple[float, Tenant | None]] = {}
        self._lock = threading.Lock()

    # -- tenants -----------------------------------------------------------------------
    def put_tenant(self, tenant: Tenant) -> None:
        check_tenant_name(tenant.name)
        values: dict[str, Any] = {"pk": tenant_pk(tenant.name), "sk": "TENANT",
                                  "name": tenant.name, "webhookSecrets": tenant.webhook_secrets}
        for attr, value in (("callbackRetryInterval", tenant.callback_retry_interval),
                            ("callbackMaxRetries", tenant.callback_max_retries),
                            ("maxActive", tenant.max_active),
                            ("rotationEndsAt", tenant.rotation_ends_at),
                            *_policy_items(tenant)):
            if value is not None:
                values[attr] = value
        self._db.put_item(TableName=self._table, Item=serialize(values))

    def create_tenant(self, tenant: Tenant) -> None:
        """Like put_tenant, but never overwrites an existing tenant."""
        check_tenant_name(tenant.name)
        values = serialize({"pk": tenant_pk(tenant.name), "sk": "TENANT", "name": tenant.name,
                            "webhookSecrets": tenant.webhook_secrets, "createdAt": time.time()})
        self._db.put_item(TableName=self._table, Item=values,
                          ConditionExpression="attribute_not_exists(pk)")

    def get_tenant(self, name: str) -> Tenant | None:
        out = self._db.get_item(TableName=self._table, Key=_tenant_key(name), ConsistentRead=True)
        if "Item" not in out:
            return None
        d = deserialize(out["Item"])
        return Tenant(name=d["name"], webhook_secrets=list(d.get("webhookSecrets", [])),
                      callback_retry_interval=d.get("callbackRetryInterval"),
                      callback_max_retries=d.get("callbackMaxRetries"),
                      max_active=d.get("maxActive"), rotation_ends_at=d.get("rotationEndsAt"),
                      retry_schedule=d.get("retrySchedule"), callback_body=d.get("callbackBody"),
                      callback_format=d.get("callbackFormat"),
                      starfish_jobs=dict(d.get("starfishJobs") or {}))

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

    def update_tenant(self, name: str, values: dict[str, Any]) -> None:
        """Set (or, for None, remove) tenant attributes; the tenant must exist."""
        sets, removes, names, vals = assignments(values)
        extra: dict[str, Any] = {"ExpressionAttributeValues": serialize(vals)} if vals else {}
        self._db.update_item(TableName=self._table, Key=_tenant_key(name),
                             UpdateExpression=update_expression(sets, removes),
                             ConditionExpression="attribute_exists(pk)",
                             ExpressionAttributeNames=names, **extra)

    # -- keys --------------------------------------------------------------------------
    def add_key(self, tenant: str, api_key: str, label: str = "",
                created_at: float | None = None) -> str:
        """Store a key's digest (the lookup item and the tenant's listing item, atomically)."""
        digest = key_digest(api_key)
        at = created_at or time.time()
        self._db.transact_write_items(TransactItems=[
            {"Put": {"TableName": self._table, "Item": serialize({
                "pk": f"KEY#{digest}", "sk": "KEY", "tenant": tenant, "createdAt": at})}},
            {"Put": {"TableName": self._table, "Item": serialize({
                "pk": tenant_pk(tenant), "sk": f"KEY#{key_id(digest)}", "digest": digest,
                "createdAt": at, "label": label})}},
        ])
        return key_id(digest)

    def list_keys(self, tenant: str) -> list[KeyInfo]:
        out = self._db.query(
            TableName=self._table, KeyConditionExpression="pk = :pk AND begins_with(sk, :k)",
            ExpressionAttributeValues=serialize({":pk": tenant_pk(tenant), ":k": "KEY#"}))
        keys = []
        for item in out.get("Items", []):
            d = deserialize(item)
            keys.append(KeyInfo(key_id=d["sk"][4:], tenant=tenant, created_at=d["createdAt"],
                                label=d.get("label", ""), revoked_at=d.get("revokedAt")))
        return sorted(keys, key=lambda k: k.created_at)

    def revoke_key(self, tenant: str, kid: str, now: float | None = None) -> bool:
        """Delete the lookup item (so the key stops working) and mark the listing item."""
        out = self._db.get_item(TableName=self._table, ConsistentRead=True,
                                Key=serialize({"pk": tenant_pk(tenant), "sk": f"KEY#{kid}"}))
        if "Item" not in out:
            return False
        digest = deserialize(out["Item"])["digest"]
        self._db.transact_write_items(TransactItems=[
            {"Delete": {"TableName": self._table,
                        "Key": serialize({"pk": f"KEY#{digest}", "sk": "KEY"})}},
            {"Update": {"TableName": self._table,
                        "Key": serialize({"pk": tenant_pk(tenant), "sk": f"KEY#{kid}"}),
                        "UpdateExpression": "SET revokedAt = :now",
                        "ExpressionAttributeValues": serialize({":now": now or time.time()})}},
        ])
        with self._lock:
            self._cache.pop(digest, None)
        return True

    # -- audit -------------------------------------------------------------------------
    def add_audit(self, tenant: str, record: dict[str, Any]) -> None:
        sk = f"AUDIT#{record['at']:017.6f}#{secrets.token_hex(4)}"
        self._db.put_item(TableName=self._table, Item=serialize(
            {"pk": tenant_pk(tenant), "sk": sk, **record}))

    def list_audit(self, tenant: str) -> list[dict[str, Any]]:
        query: dict[str, Any] = {
            "TableName": self._table, "KeyConditionExpression": "pk = :pk AND begins_with(sk, :a)",
            "ExpressionAttributeValues": serialize({":pk": tenant_pk(tenant), ":a": "AUDIT#"})}
        out: list[dict[str, Any]] = []
        while True:
            page = self._db.query(**query)
            out += [{k: v for k, v in deserialize(i).items() if k not in ("pk", "sk")}
                    for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return out
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- authentication ----------------------------------------------------------------
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
        # compare_digest takes ASCII-only str: compare the UTF-8 bytes of any user name.
        if tenant is None or (named is not None and not hmac.compare_digest(
                named.encode("utf-8", "surrogatepass"), tenant.name.encode())):
            raise unauthorized()
        return tenant

    def _resolve(self, digest: str) -> Tenant | None:
        out = self._db.get_item(TableName=self._table,
                                Key=serialize({"pk": f"KEY#{digest}", "sk": "KEY"}))
        if "Item" not in out:
            return None
        return self.get_tenant_cached(deserialize(out["Item"])["tenant"])
