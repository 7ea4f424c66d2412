"""DynamoDB job store. Every key starts with the tenant, so no query can reach another
tenant's items; each job is its own partition; three GSIs serve listings newest first.
Composite keys are built only by the key functions below, which percent-encode every part
(`part()`): no caller text can contain the `#` separator, so no key of one tenant can equal
a key of another, whatever the names and filters.
Every state change is a conditional write, which is what makes the worker safe to repeat."""

from __future__ import annotations

import builtins
import dataclasses
import heapq
import logging
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from .capacity import TenantSlots
from .jobs import CANCELED, FAILED, QUEUED, RUNNING, TERMINAL, Job
from .ports import Conflict, RunIdTaken, StoreUnavailable, Unavailable, translating

__all__ = ["Conflict", "JobStore", "Page", "RunIdTaken"]  # the exceptions live in ports.py

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger("jobgate.store")
_ser, _de = TypeSerializer(), TypeDeserializer()
_FIELDS = {f.name: "".join(w.title() if i else w for i, w in enumerate(f.name.split("_")))
           for f in dataclasses.fields(Job)}
_ATTRS = {v: k for k, v in _FIELDS.items()}
_JOB_FIELDS = {f.name: f for f in dataclasses.fields(Job)}

RUN_ID_TRIES = 6
KEEP_LAST_DELIVERIES = 20  # webhook attempts kept after the first (docs/api.md)
INDEX_ALL, INDEX_STATUS, INDEX_SERVICE = "byTenantShard", "byStatusShard", "byServiceShard"
INDEX_ATTRS = {INDEX_ALL: "l1pk", INDEX_STATUS: "l2pk", INDEX_SERVICE: "l3pk"}
# What the listing indexes project besides the keys: the filters a listing applies.
INDEX_PROJECTED = ("expiresAt", "service")
# Partitions per listing index and tenant: 5,000 submits/s and 5,000 ends/s of one tenant
# write at most 10,000 entries/s to one index (a status change is a delete and a put),
# 625/s a shard, under DynamoDB's 1,000 WCU/s per partition (tests/test_store.py).
# A deployment constant (changing it on a stage with jobs needs the backfill of
# infra/README.md). The local runner uses 2: moto evaluates every index query against the
# whole table, so 16 shard queries per page made a local listing of thousands of jobs crawl,
# and a laptop never needs the write spread.
LIST_SHARDS = int(os.environ.get("JOBGATE_LIST_SHARDS") or 16)
# Index entries the first query of each shard reads (then one at a time, as the merge needs
# them): a page of 20 over 16 shards evaluates ~40 entries on average, 60 items with its jobs.
LIST_CHUNK = 2
# A worker job's claim-index keys and lease deadline: no terminal job keeps them.
CLAIM_ATTRS = ("claimKey", "availableAt", "claimedAt", "runDeadline")


def part(text: str) -> str:
    """One part of a composite key, percent-encoded: `#` and `%` never appear raw, so
    joining parts with `#` is injective. Tenant slugs, service names, statuses, job IDs and
    run IDs (letters, digits, `-_.:~`) encode to themselves: existing keys are unchanged."""
    return quote(text, safe=":")


def job_pk(tenant: str, job_id: str) -> str:
    return f"T#{part(tenant)}#J#{part(job_id)}"


def run_pk(tenant: str, run_id: str) -> str:
    return f"T#{part(tenant)}#R#{part(run_id)}"


def index_shard(job_id: str) -> int:
    """The listing-index shard of a job: fixed by its ID, so every write of the job (and a
    retry of it) uses the same one."""
    return zlib.crc32(job_id.encode()) % LIST_SHARDS


def tenant_index_key(tenant: str, shard: int) -> str:
    return f"{part(tenant)}#{shard:02d}"


def status_index_key(tenant: str, status: str, shard: int) -> str:
    return f"{part(tenant)}#{part(status)}#{shard:02d}"


def service_index_key(tenant: str, service: str, shard: int) -> str:
    return f"{part(tenant)}#{part(service)}#{shard:02d}"


# The status index's partition of queued and running jobs: one for both, so a claim (and a
# retry's release) leaves the job's entry where it is; only the end moves it, to its
# terminal status. A listing of queued or running jobs reads this partition and keeps the
# jobs in that status (their items are read anyway); at most the tenant's quota of active
# jobs lives here.
ACTIVE = "active"


def index_state(status: str) -> str:
    """The status index partition of a job in `status`."""
    return ACTIVE if status in (QUEUED, RUNNING) else status


def job_status_key(tenant: str, job_id: str, status: str) -> str:
    """The status index key a job in `status` carries (what a status change writes; the
    same for queued and running)."""
    return status_index_key(tenant, index_state(status), index_shard(job_id))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return bytes(value)  # type: ignore[call-overload]  # Binary has __bytes__
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def _dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dynamo(v) for v in value]
    return value


def serialize(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(_dynamo(v)) for k, v in values.items()}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def job_from_item(item: dict[str, Any]) -> Job:
    data = deserialize(item)
    return Job(**{_ATTRS[k]: v for k, v in data.items() if k in _ATTRS})


def assignments(values: dict[str, Any]) -> tuple[list[str], list[str], dict[str, str],
                                                 dict[str, Any]]:
    """Placeholders for an update: (SET clauses, REMOVE clauses for None values,
    attribute names, attribute values)."""
    setting = {k: v for k, v in values.items() if v is not None}
    removing = [k for k, v in values.items() if v is None]
    names = {f"#a{i}": k for i, k in enumerate(setting)}
    names.update({f"#r{i}": k for i, k in enumerate(removing)})
    return ([f"#a{i} = :v{i}" for i in range(len(setting))],
            [f"#r{i}" for i in range(len(removing))], names,
            {f":v{i}": v for i, v in enumerate(setting.values())})


def update_expression(sets: list[str], removes: list[str]) -> str:
    parts = [f"SET {', '.join(sets)}"] if sets else []
    return " ".join(parts + ([f"REMOVE {', '.join(removes)}"] if removes else []))


def apply(job: Job, values: dict[str, Any]) -> Job:
    """The job as it will be once `values` (item attribute names) are written. A name that
    is no job attribute is refused (ValueError): `assignments` would still write it."""
    unknown = sorted(set(values) - set(_ATTRS))
    if unknown:
        raise ValueError(f"not job attributes: {', '.join(unknown)}")
    changes = {}
    for attr, value in values.items():
        if attr in _ATTRS:
            f = _JOB_FIELDS[_ATTRS[attr]]
            if value is None and f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()  # a removed attribute reads back as its default
            changes[f.name] = value
    return dataclasses.replace(job, **changes)


def job_to_item(job: Job) -> dict[str, Any]:
    values = {_FIELDS[k]: v for k, v in dataclasses.asdict(job).items() if v not in (None, {}, [])}
    values.update(
        pk=job_pk(job.tenant, job.job_id), sk="JOB", ttl=int(job.expires_at),
        gsk=job.job_id, **index_keys(job),
    )
    return serialize(values)


def index_keys(job: Job) -> dict[str, str]:
    """The job's three listing-index keys (attribute name → value)."""
    shard = index_shard(job.job_id)
    return {"l1pk": tenant_index_key(job.tenant, shard),
            "l2pk": status_index_key(job.tenant, index_state(job.status), shard),
            "l3pk": service_index_key(job.tenant, job.service, shard)}


@dataclass
class Page:
    jobs: list[Job]
    last_job_id: str | None


class _Desc(str):
    """A job ID that sorts newest first in a min-heap (job IDs sort by creation time)."""

    __slots__ = ()

    def __lt__(self, other: str) -> bool:
        return str.__gt__(self, other)


def _desc(job_id: str) -> _Desc:
    return _Desc(job_id)


class _ShardReader:
    """One shard of a listing index, read newest first LIST_CHUNK entries at a time, only
    as far as the merge needs (the next entry of each shard decides the order)."""

    def __init__(self, db: Any, table: str, index: str, pk: str, now: float,
                 service: str | None, after: str | None) -> None:
        self._db, self._done, self._read = db, False, False
        self._buffer: list[str] = []
        names = {"#pk": INDEX_ATTRS[index]}
        values: dict[str, Any] = {":pk": pk, ":now": now}
        condition = "#pk = :pk"
        if after:
            condition += " AND gsk < :after"
            values[":after"] = after
        self._kwargs: dict[str, Any] = {
            "TableName": table, "IndexName": index, "ScanIndexForward": False,
            "KeyConditionExpression": condition, "FilterExpression": "expiresAt > :now",
            "ExpressionAttributeNames": names, "ProjectionExpression": "gsk",
        }
        if service:
            self._kwargs["FilterExpression"] += " AND service = :svc"
            values[":svc"] = service
        self._kwargs["ExpressionAttributeValues"] = serialize(values)

    def peek(self) -> str | None:
        while not self._buffer and not self._done:
            out = self._db.query(**self._kwargs, Limit=1 if self._read else LIST_CHUNK)
            self._read = True
            self._buffer = [i["gsk"]["S"] for i in reversed(out.get("Items", []))]
            if "LastEvaluatedKey" in out:
                self._kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]
            else:
                self._done = True
        return self._buffer[-1] if self._buffer else None

    def pop(self) -> str:
        return self._buffer.pop()




@translating(StoreUnavailable, conflicts=True)  # botocore's errors stay in this module
class JobStore:
    def __init__(self, client: DynamoDBClient, table: str):
        self._db = client
        self._table = table
        self.slots = TenantSlots(client, table)

    # -- reads -------------------------------------------------------------------------
    def get(self, tenant: str, job_id: str, now: float, consistent: bool = True) -> Job | None:
        """The job, or None when unknown or past its retention (TTL deletes late)."""
        out = self._db.get_item(
            TableName=self._table, Key=self._key(tenant, job_id), ConsistentRead=consistent
        )
        item = out.get("Item")
        if not item:
            return None
        job = job_from_item(item)
        return None if job.expired(now) else job

    def list(
        self, tenant: str, now: float, *, status: str | None, service: str | None,
        limit: int, after: str | None,
    ) -> Page:
        """One page, newest first: the shards of one index merged by job ID (creation order),
        reading a few entries per shard at a time, then the page's jobs by key. `after` (the
        last job ID of the previous page) is a stable cursor: every shard resumes below it.
        Queued and running jobs share the status index's `active` partition: their listing
        keeps the jobs read in the status asked for."""
        def key(shard: int) -> str:
            if status:
                return status_index_key(tenant, index_state(status), shard)
            if service:
                return service_index_key(tenant, service, shard)
            return tenant_index_key(tenant, shard)

        index = INDEX_STATUS if status else INDEX_SERVICE if service else INDEX_ALL
        shards = [_ShardReader(self._db, self._table, index, key(s), now,
                               service if status else None, after)
                  for s in range(LIST_SHARDS)]
        heads: list[tuple[_Desc, int]] = []  # each shard's next entry, newest on top
        for i, reader in enumerate(shards):
            head = reader.peek()
            if head is not None:
                heads.append((_desc(head), i))
        heapq.heapify(heads)
        keep = status if status and index_state(status) != status else None
        jobs: builtins.list[Job] = []
        last: str | None = None  # every entry up to this one is on the page or not wanted
        while heads and len(jobs) < limit:
            ids: builtins.list[str] = []
            while heads and len(ids) < limit - len(jobs):
                _, i = heapq.heappop(heads)
                ids.append(shards[i].pop())
                head = shards[i].peek()
                if head is not None:
                    heapq.heappush(heads, (_desc(head), i))
            last = ids[-1]
            found = self._get_many(tenant, ids, now)
            jobs += [j for j in found if keep is None or j.status == keep]
            if keep is None:
                break  # every entry read is on the page
        return Page(jobs, last if heads else None)

    def _get_many(self, tenant: str, job_ids: Sequence[str], now: float) -> builtins.list[Job]:
        """The jobs by key, in the order given (one BatchGetItem per 100); a job deleted or
        expired since its index entry was read is left out."""
        found: dict[str, Job] = {}
        for start in range(0, len(job_ids), 100):
            request: dict[str, Any] = {self._table: {"Keys": [
                self._key(tenant, j) for j in job_ids[start:start + 100]]}}
            while request:
                out = self._db.batch_get_item(RequestItems=request)
                for item in out.get("Responses", {}).get(self._table, []):
                    job = job_from_item(item)
                    found[job.job_id] = job
                request = dict(out.get("UnprocessedKeys") or {})
        return [found[j] for j in job_ids if j in found and not found[j].expired(now)]

    # -- the tenant quota (chalicelib/capacity.py TenantSlots) ----------------------------
    def reserve_slot(self, tenant: str, job_id: str, limit: int) -> tuple[int | None, int]:
        """Take one of the tenant's `limit` active-job slots for a new job: (its shard, to
        store on the job; None at the limit), the count seen when refused. One write."""
        return self.slots.reserve(tenant, job_id, limit)

    def release_slot(self, tenant: str, slot: int) -> None:
        """Give back the slot of a submit that failed before its job was stored."""
        self.slots.release(tenant, slot)

    def repair_slots(self, tenant: str, counted: int, now: float) -> int:
        """After a refusal: give back slots no live queued or running job holds (seen so
        on two looks; TenantSlots.repair). Reads the status index, at most `counted` + 1
        entries, at most every LOOK_EVERY seconds: only when a tenant is at its limit."""
        return self.slots.repair(tenant, counted,
                                 lambda: self.count_active(tenant, counted + 1, now))

    def _ended(self, job: Job) -> Job:
        """The job's terminal write succeeded (it was queued or running, so this is its
        one end): its quota slot is free. A release that fails is logged and left to
        `repair_slots`; the end itself stands."""
        if job.slot is not None:
            try:
                self.slots.release(job.tenant, job.slot)
            except Unavailable:
                log.warning("a tenant quota slot was not given back (repaired later)",
                            extra={"jobId": job.job_id})
        return job

    def count_active(self, tenant: str, cap: int, now: float) -> int:
        """Queued + running jobs, counting at most `cap` (so the read cost is bounded):
        what the quota's repair compares its count with."""
        total = 0
        for status in (ACTIVE,):
            for shard in range(LIST_SHARDS):
                kwargs: dict[str, Any] = {
                    "TableName": self._table, "IndexName": INDEX_STATUS, "Select": "COUNT",
                    "KeyConditionExpression": "l2pk = :pk",
                    "FilterExpression": "expiresAt > :now",
                    "ExpressionAttributeValues": serialize(
                        {":pk": status_index_key(tenant, status, shard), ":now": now}),
                }
                while total < cap:
                    kwargs["Limit"] = cap - total
                    out = self._db.query(**kwargs)
                    total += out.get("Count", 0)
                    if "LastEvaluatedKey" not in out:
                        break
                    kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        return total

    # -- submit ------------------------------------------------------------------------
    def create(self, job: Job) -> None:
        """Write a new job; with a runId, atomically with the runId's claim."""
        item = job_to_item(job)
        if not job.run_id:
            self._db.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
            return
        run_item = serialize({
            "pk": run_pk(job.tenant, job.run_id), "sk": "RUN", "jobId": job.job_id,
            "requestHash": job.request_hash or "", "ttl": int(job.expires_at),
            "expiresAt": job.expires_at,
        })
        items: list[Any] = [
            {"Put": {"TableName": self._table, "Item": run_item,
                     "ConditionExpression": "attribute_not_exists(pk) OR expiresAt < :now",
                     "ExpressionAttributeValues": serialize({":now": job.created_at})}},
            {"Put": {"TableName": self._table, "Item": item,
                     "ConditionExpression": "attribute_not_exists(pk)"}},
        ]
        for attempt in range(RUN_ID_TRIES):
            try:
                self._db.transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                existing = self.run_id_owner(job.tenant, job.run_id)
                if existing is not None:
                    raise RunIdTaken(*existing) from exc
                if attempt == RUN_ID_TRIES - 1:
                    raise
                # A concurrent submit of the same runId is mid-transaction (conflict, not a
                # failed condition): its winner becomes visible in a moment.
                time.sleep(0.02 * 2 ** attempt)

    def create_if_absent(self, job: Job) -> None:
        """For a chain's next job, whose ID was fixed by the previous job's end."""
        try:
            self.create(job)
        except Conflict:
            pass  # created already

    def run_id_owner(self, tenant: str, run_id: str) -> tuple[str, str] | None:
        out = self._db.get_item(
            TableName=self._table, ConsistentRead=True,
            Key=serialize({"pk": run_pk(tenant, run_id), "sk": "RUN"}),
        )
        if "Item" not in out:
            return None
        data = deserialize(out["Item"])
        return data["jobId"], data.get("requestHash", "")

    def forget(self, job: Job) -> None:
        """Undo a submit whose enqueue failed (the client got a 503, not a job)."""
        self._db.delete_item(TableName=self._table, Key=self._key(job.tenant, job.job_id))
        if job.run_id:
            self._db.delete_item(
                TableName=self._table,
                Key=serialize({"pk": run_pk(job.tenant, job.run_id), "sk": "RUN"}),
            )

    # -- worker ------------------------------------------------------------------------
    def claim(self, tenant: str, job_id: str, token: str, lease_seconds: float, now: float) -> Job:
        """Take the job's lease: a queued job, or a running one whose worker's lease lapsed.
        Raises Conflict (with the current job) when someone else holds it or it ended."""
        return self._update(
            tenant, job_id,
            "SET #st = :running, l2pk = :g2, leaseToken = :tok, leaseUntil = :until, "
            "attempts = if_not_exists(attempts, :zero) + :one, "
            "startedAt = if_not_exists(startedAt, :now)",
            "attribute_exists(pk) AND expiresAt > :now AND attempts < maxAttempts AND "
            "(#st = :queued OR (#st = :running AND leaseUntil < :now))",
            {":running": RUNNING, ":queued": QUEUED, ":tok": token,
             ":g2": job_status_key(tenant, job_id, RUNNING),
             ":until": now + lease_seconds, ":zero": 0, ":one": 1, ":now": now},
        )

    def heartbeat(self, tenant: str, job_id: str, token: str, values: dict[str, Any]) -> Job:
        """Progress and status variables; Conflict once the job was canceled or re-leased."""
        sets, removes, names, vals = assignments(values)
        return self._update(
            tenant, job_id, update_expression(sets, removes),
            "#st = :running AND leaseToken = :tok",
            {**vals, ":running": RUNNING, ":tok": token}, names,
        )

    def finish(
        self, tenant: str, job_id: str, token: str | None, status: str, values: dict[str, Any],
        now: float,
    ) -> Job:
        """The terminal write (None values are removed). With a token: only the lease holder,
        only while running (so a canceled job stays canceled). Without: only a job nobody
        holds (queued, or its lease lapsed)."""
        assert status in TERMINAL
        sets, removes, names, vals = assignments(values)
        if token:
            cond = "#st = :running AND leaseToken = :tok"
            vals[":tok"] = token
        else:
            cond = "attribute_exists(pk) AND (#st = :queued OR (#st = :running AND leaseUntil < :now))"
            vals[":queued"] = QUEUED
        return self._ended(self._update(
            tenant, job_id,
            update_expression(["#st = :status", "l2pk = :g2", "completedAt = :now", *sets],
                              ["leaseToken", "leaseUntil", *CLAIM_ATTRS, *removes]),
            cond,
            {**vals, ":status": status, ":g2": job_status_key(tenant, job_id, status), ":running": RUNNING,
             ":now": now},
            names,
        ))

    def release(self, tenant: str, job_id: str, token: str, code: str, message: str,
                retry_at: float | None = None) -> Job:
        """Give a failed attempt back to the queue for a later retry, at `retry_at` (kept as
        `availableAt`, the job resource's `retryAt`; without `claimKey` the item stays out
        of the claim index)."""
        at = ", availableAt = :at" if retry_at is not None else ""
        return self._update(
            tenant, job_id,
            f"SET #st = :queued, l2pk = :g2, errorCode = :c, errorMessage = :m{at} "
            "REMOVE leaseToken, leaseUntil",
            "#st = :running AND leaseToken = :tok",
            {":queued": QUEUED, ":g2": job_status_key(tenant, job_id, QUEUED), ":c": code, ":m": message,
             ":running": RUNNING, ":tok": token, **({":at": retry_at} if at else {})},
        )

    def cancel(self, tenant: str, job_id: str, now: float, values: dict[str, Any]) -> Job:
        """Queued or running → canceled, at once. Returns the job as it was before."""
        key = self._key(tenant, job_id)
        sets, removes, names, vals = assignments(values)
        try:
            out = self._db.update_item(
                TableName=self._table, Key=key,
                UpdateExpression=update_expression(
                    ["#st = :c", "l2pk = :g2", "completedAt = :now", *sets],
                    ["leaseToken", "leaseUntil", *CLAIM_ATTRS, *removes]),
                ConditionExpression="expiresAt > :now AND (#st = :q OR #st = :r)",
                ExpressionAttributeNames={"#st": "status", **names},
                ExpressionAttributeValues=serialize({
                    **vals, ":c": CANCELED, ":g2": job_status_key(tenant, job_id, CANCELED), ":now": now,
                    ":q": QUEUED, ":r": RUNNING}),
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            raise self._conflict(exc) from exc
        before = job_from_item(out["Attributes"])
        self._ended(before)
        return before

    def record_delivery(self, tenant: str, job_id: str, delivery: dict[str, Any],
                        delivered: bool, at: float) -> Job | None:
        """Append one webhook attempt to the job and count it. None when the event is no
        longer pending (delivered or given up by another copy of the message). The list
        keeps the first attempt and the last KEEP_LAST_DELIVERIES; `callbackAttempts`
        counts them all. A success removes `callbackLastError` (absent, never "")."""
        error = delivery.get("error") or None
        update = ("SET deliveries = list_append(if_not_exists(deliveries, :empty), :d), "
                  "callbackAttempts = if_not_exists(callbackAttempts, :zero) + :one, "
                  "callbackLastAt = :at, callbackState = :state")
        values: dict[str, Any] = {
            ":empty": [], ":d": [delivery], ":zero": 0, ":one": 1, ":at": at,
            ":pending": "pending", ":state": "delivered" if delivered else "pending"}
        if error is None:
            update += " REMOVE callbackLastError"
        else:
            update = update.replace("callbackState = :state",
                                    "callbackState = :state, callbackLastError = :err")
            values[":err"] = error
        try:
            job = self._update(tenant, job_id, update, "callbackState = :pending", values, names={})
        except Conflict:
            return None
        excess = len(job.deliveries) - 1 - KEEP_LAST_DELIVERIES
        if excess > 0:
            job = self._trim_deliveries(tenant, job_id, len(job.deliveries), excess) or job
        return job

    def _trim_deliveries(self, tenant: str, job_id: str, size: int, excess: int) -> Job | None:
        """Drop the oldest attempts after the first. Conditional on the list being the size
        just read: if another write came between, the next attempt trims instead."""
        removes = ", ".join(f"deliveries[{i}]" for i in range(1, 1 + excess))
        try:
            return self._update(tenant, job_id, f"REMOVE {removes}", "size(deliveries) = :n",
                                {":n": size})
        except Conflict:
            return None

    def set_callback_state(self, tenant: str, job_id: str, state: str, expect: str,
                           error: str | None = None) -> Job:
        """Conflict unless the webhook is in state `expect` (and the job exists)."""
        update, values = "SET callbackState = :s", {":s": state, ":e": expect}
        if error:
            update += ", callbackLastError = :err"
            values[":err"] = error
        return self._update(
            tenant, job_id, update, "callbackState = :e AND attribute_exists(#st)", values,
        )

    def update_fields(self, tenant: str, job_id: str, values: dict[str, Any]) -> None:
        sets, removes, names, vals = assignments(values)
        extra: dict[str, Any] = {"ExpressionAttributeValues": serialize(vals)} if vals else {}
        self._db.update_item(
            TableName=self._table, Key=self._key(tenant, job_id),
            UpdateExpression=update_expression(sets, removes),
            ConditionExpression="attribute_exists(pk)", ExpressionAttributeNames=names, **extra,
        )

    def delete(self, tenant: str, job_id: str) -> Job:
        """Delete a finished job and every item of its partition (deliveries)."""
        try:
            out = self._db.delete_item(
                TableName=self._table, Key=self._key(tenant, job_id),
                ConditionExpression="#st IN (:s, :f, :c)",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues=serialize({":s": "succeeded", ":f": FAILED, ":c": CANCELED}),
                ReturnValues="ALL_OLD", ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            raise self._conflict(exc) from exc
        job = job_from_item(out["Attributes"])
        if job.run_id:  # the runId is free again once its job is gone
            try:
                self._db.delete_item(
                    TableName=self._table,
                    Key=serialize({"pk": run_pk(tenant, job.run_id), "sk": "RUN"}),
                    ConditionExpression="jobId = :j",
                    ExpressionAttributeValues=serialize({":j": job_id}),
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        pk = job_pk(tenant, job_id)
        query: dict[str, Any] = {"TableName": self._table, "KeyConditionExpression": "pk = :pk",
                 "ExpressionAttributeValues": serialize({":pk": pk}), "ProjectionExpression": "sk"}
        while True:
            page = self._db.query(**query)
            for item in page.get("Items", []):
                self._db.delete_item(TableName=self._table, Key={"pk": {"S": pk}, "sk": item["sk"]})
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return job

    # -- helpers -----------------------------------------------------------------------
    def _key(self, tenant: str, job_id: str) -> dict[str, Any]:
        return serialize({"pk": job_pk(tenant, job_id), "sk": "JOB"})

    def _update(
        self, tenant: str, job_id: str, update: str, condition: str, values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> Job:
        names = dict(names or {})
        if "#st" in update or "#st" in condition:
            names["#st"] = "status"
        kwargs: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
        try:
            out = self._db.update_item(
                TableName=self._table, Key=self._key(tenant, job_id),
                UpdateExpression=update, ConditionExpression=condition, **kwargs,
                ExpressionAttributeValues=serialize(values),
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            raise self._conflict(exc) from exc
        return job_from_item(out["Attributes"])

    @staticmethod
    def _conflict(exc: ClientError) -> Exception:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            return exc
        item: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
        return Conflict(job_from_item(item) if item else None)
