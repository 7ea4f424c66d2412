"""Worker keys (`jgw_...`): the credentials of worker processes, one set per deployment,
each limited to named services. Stored only as SHA-256 digests, like tenant API keys, but
under their own item prefix (`WKEY#<digest>`), so a worker key is never a tenant key and a
tenant key never a worker key: each lookup simply misses the other kind (401)."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .ports import StoreUnavailable, translating
from .store import deserialize, serialize
from .tenants import key_digest, key_id, unauthorized

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CACHE_SECONDS = 5.0
LISTING = "WORKERKEYS"


@dataclass(frozen=True)
class WorkerKey:
    key_id: str
    services: tuple[str, ...]
    created_at: float
    label: str = ""
    revoked_at: float | None = None

    def allows(self, service: str) -> bool:
        return service in self.services


@translating(StoreUnavailable)  # botocore's errors stay in this module
@dataclass
class WorkerKeyStore:
    """The adapter of ports.WorkerKeyPort on the jobs table."""

    db: DynamoDBClient
    table: str
    cache_seconds: float = CACHE_SECONDS
    _cache: dict[str, tuple[float, WorkerKey | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, services: list[str], label: str = "",
            created_at: float | None = None) -> str:
        digest = key_digest(key)
        kid, at = key_id(digest), created_at or time.time()
        self.db.transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table, "Item": serialize({
                "pk": f"WKEY#{digest}", "sk": "WKEY", "keyId": kid, "services": services,
                "createdAt": at, "label": label}),
                "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Put": {"TableName": self.table, "Item": serialize({
                "pk": LISTING, "sk": f"WKEY#{kid}", "digest": digest, "services": services,
                "createdAt": at, "label": label})}},
        ])
        return kid

    def list(self) -> list[WorkerKey]:
        query: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "pk = :pk AND begins_with(sk, :k)",
            "ExpressionAttributeValues": serialize({":pk": LISTING, ":k": "WKEY#"})}
        keys = []
        while True:
            page = self.db.query(**query)
            for item in page.get("Items", []):
                d = deserialize(item)
                keys.append(WorkerKey(key_id=d["sk"][5:], services=tuple(d.get("services", [])),
                                      created_at=d["createdAt"], label=d.get("label", ""),
                                      revoked_at=d.get("revokedAt")))
            if "LastEvaluatedKey" not in page:
                return sorted(keys, key=lambda k: k.created_at)
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def revoke(self, kid: str, now: float | None = None) -> bool:
        out = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=serialize({"pk": LISTING, "sk": f"WKEY#{kid}"}))
        if "Item" not in out:
            return False
        digest = deserialize(out["Item"])["digest"]
        self.db.transact_write_items(TransactItems=[
            {"Delete": {"TableName": self.table,
                        "Key": serialize({"pk": f"WKEY#{digest}", "sk": "WKEY"})}},
            {"Update": {"TableName": self.table,
                        "Key": serialize({"pk": LISTING, "sk": f"WKEY#{kid}"}),
                        "UpdateExpression": "SET revokedAt = :now",
                        "ExpressionAttributeValues": serialize({":now": now or time.time()})}},
        ])
        with self._lock:
            self._cache.pop(digest, None)
        return True

    def authenticate(self, authorization: str | None) -> WorkerKey:
        """The worker key named by `Authorization: Bearer jgw_...`, or 401."""
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise unauthorized("worker credentials required: Authorization: Bearer <worker key>")
        digest = key_digest(value)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit and now - hit[0] < self.cache_seconds:
            key = hit[1]
        else:
            out = self.db.get_item(TableName=self.table,
                                   Key=serialize({"pk": f"WKEY#{digest}", "sk": "WKEY"}))
            key = None
            if "Item" in out:
                d = deserialize(out["Item"])
                key = WorkerKey(key_id=d["keyId"], services=tuple(d.get("services", [])),
                                created_at=d["createdAt"], label=d.get("label", ""))
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (now, key)
        if key is None:
            raise unauthorized()
        return key


def new_worker_key() -> str:
    return "jgw_" + secrets.token_urlsafe(24)
