"""What a benchmark counts: AWS requests seen in botocore's events, DynamoDB request units
(the billing model applied to the items before and after each write), and their price."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# AWS public list prices, us-east-1, no free tier (checked against the pricing pages).
PRICES = {
    "dynamodb_write_request_unit": 0.625 / 1e6,   # on-demand, per WRU
    "dynamodb_read_request_unit": 0.125 / 1e6,    # on-demand, per RRU
    "sqs_request": 0.40 / 1e6,                    # standard queue, per 64 KB request
    "s3_put_class_request": 0.005 / 1e3,          # PUT, COPY, POST, LIST
    "s3_get_class_request": 0.0004 / 1e3,         # GET, HEAD and the rest (DELETE is free)
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000166667,             # x86
    "api_gateway_rest_request": 3.50 / 1e6,       # REST API (what chalice deploys), first 333 M
}
S3_PUT_CLASS = {"PutObject", "CopyObject", "UploadPart", "CreateMultipartUpload",
                "CompleteMultipartUpload", "ListObjectsV2", "ListObjects"}
S3_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}


# -- DynamoDB request units (the billing model, applied to what botocore saw) ----------------

def value_size(value: dict[str, Any]) -> int:
    (kind, x), = value.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        digits = len(x.lstrip("-").replace(".", "").strip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind == "B":
        return len(x)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: e}) for e in x)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_size(e) for k, e in x.items())
    return 0


def item_size(item: dict[str, Any]) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def _key(item_or_key: dict[str, Any]) -> tuple[str, str]:
    return (item_or_key.get("pk", {}).get("S", ""), item_or_key.get("sk", {}).get("S", ""))


def _units(size: int, block: int) -> int:
    return max(1, math.ceil(size / block))


# -- counting AWS requests from botocore's events --------------------------------------------

@dataclass
class Meter:
    """Counts every AWS call by (origin, phase, service, operation) and estimates DynamoDB
    request units from the real parameters and answers."""

    enabled: bool = False
    phase: str = "setup"
    calls: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    wru: Counter[str] = field(default_factory=Counter)
    # write units by (phase, what was written: job_item, index:<name>, a counter)
    parts: Counter[tuple[str, str]] = field(default_factory=Counter)
    rru: Counter[str] = field(default_factory=Counter)
    items: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    peek: Callable[[str, dict[str, Any]], dict[str, Any] | None] = lambda table, key: None
    queries: list[dict[str, int]] = field(default_factory=list)

    def attach(self, client: Any, origin: str) -> None:
        events = client.meta.events
        events.register("before-parameter-build.*.*", self._params)
        events.register("before-call.*.*", lambda **kw: self._before(origin, **kw))
        events.register("after-call.*.*", lambda **kw: self._after(origin, **kw))

    def reset(self) -> None:
        self.calls.clear()
        self.wru.clear()
        self.parts.clear()
        self.rru.clear()
        self.queries.clear()

    @staticmethod
    def _params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params

    def _before(self, origin: str, event_name: str, context: dict[str, Any] | None = None,
                **_: Any) -> None:
        if event_name.startswith("before-call.dynamodb.") and context is not None:
            self._pre_images(event_name.rsplit(".", 1)[-1], context)
        if self.enabled:
            _, service, op = event_name.split(".", 2)
            self.calls[(origin, self.phase, service, op)] += 1

    def _pre_images(self, op: str, context: dict[str, Any]) -> None:
        """The items a write is about to change, as they are now (its 'before')."""
        params = context.get("bench_params") or {}
        specs = [params] if op in ("PutItem", "UpdateItem", "DeleteItem") else \
            [next(iter(e.values())) for e in params.get("TransactItems", [])] \
            if op == "TransactWriteItems" else []
        for spec in specs:
            key = spec.get("Key") or {k: spec["Item"][k] for k in ("pk", "sk")}
            self.items[_key(key)] = self.peek(spec["TableName"], key)

    def _after(self, origin: str, event_name: str, parsed: dict[str, Any], context: dict[str, Any],
               http_response: Any, **_: Any) -> None:
        _, service, op = event_name.split(".", 2)
        if service != "dynamodb":
            return
        params = context.get("bench_params") or {}
        ok = http_response.status_code < 300
        wru, rru = self._request_units(op, params, parsed, ok)
        if self.enabled:
            self.wru[self.phase] += wru
            self.rru[self.phase] += rru
            if op == "BatchGetItem":  # a listing's page read by key
                n = sum(len(v) for v in parsed.get("Responses", {}).values())
                self.queries.append({"returned": 0, "count": 0, "scanned": 0, "fetched": n})
            if op == "Query":
                self.queries.append({"returned": len(parsed.get("Items", [])),
                                     "count": int(parsed.get("Count", 0)),
                                     "scanned": int(parsed.get("ScannedCount", 0))})

    def _count(self, what: str, units: int) -> None:
        if self.enabled:
            self.parts[(self.phase, what)] += units

    def _request_units(self, op: str, params: dict[str, Any], parsed: dict[str, Any], ok: bool
                       ) -> tuple[float, float]:
        """(write units, read units) of one call, from the items as they are in the table
        before and after it (read back through an unmetered client): DynamoDB's rules.
        Table: 1 WRU per KB of the larger of the item before and after (a refused condition
        still costs the item's size), doubled in a transaction. Each GSI, per its projection
        (localrunner/provision.py, the same as infra/template.yaml): an entry appearing is a
        put, disappearing a delete, a changed key a delete and a put, a changed projected
        attribute one write, anything else nothing; 1 WRU per KB of the entry. Reads: 1 RRU
        per 4 KB (eventually consistent: half), index queries by the entries evaluated."""
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            key = params.get("Key") or {k: params["Item"][k] for k in ("pk", "sk")}
            before = self.items.get(_key(key))
            after = self.peek(params["TableName"], key)
            self.items[_key(key)] = after
            if not ok:  # a refused condition: the item's size, no index write
                units = _units(item_size(before) if before else 1, 1024)
                self._count(what_item(before or {"pk": key["pk"]}), units)
                return units, 0
            parts: Counter[str] = Counter()
            write_units(before, after, parts=parts)
            for what, n in parts.items():
                self._count(what, n)
            return sum(parts.values()), 0
        if op == "TransactWriteItems":
            total = 0
            for entry in params.get("TransactItems", []):
                (kind, spec), = entry.items()
                key = spec.get("Key") or {k: spec["Item"][k] for k in ("pk", "sk")}
                before = self.items.get(_key(key))
                after = self.peek(spec["TableName"], key)
                self.items[_key(key)] = after
                tparts: Counter[str] = Counter()
                write_units(before, after, transaction=True, parts=tparts)
                for what, n in tparts.items():
                    self._count(what, n)
                total += sum(tparts.values())
            return total, 0
        if op == "GetItem":
            item = parsed.get("Item")
            size = item_size(item) if item else 1
            return 0, _units(size, 4096) * (1.0 if params.get("ConsistentRead") else 0.5)
        if op == "BatchGetItem":
            items = [i for v in parsed.get("Responses", {}).values() for i in v]
            return 0, sum(_units(item_size(i), 4096) * 0.5 for i in items)
        if op == "Query":
            index = params.get("IndexName")
            scanned = int(parsed.get("ScannedCount", 0))
            if index:  # the index entries evaluated, at the size of one entry
                entry = INDEX_ENTRY_BYTES.get(index, 100)
                size = scanned * entry
            else:
                size = sum(item_size(i) for i in parsed.get("Items", []))
            return 0, _units(size, 4096) * (1.0 if params.get("ConsistentRead") else 0.5)
        return 0, 0


def index_projections() -> dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]]:
    """Each GSI of the table: (its key attributes, its projected non-key attributes or None
    for ALL), as localrunner/provision.py creates them."""
    from localrunner.provision import CLAIM_INDEX, INDEXES, LIST_PROJECTION

    out: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {}
    for name, pk in INDEXES:
        out[name] = ((pk, "gsk"), tuple(LIST_PROJECTION.get("NonKeyAttributes", ())))
    out[CLAIM_INDEX["IndexName"]] = (
        tuple(k["AttributeName"] for k in CLAIM_INDEX["KeySchema"]), ())
    return out


# A listing-index entry (keys, expiresAt, service) is ~100 bytes; reads of an index are
# priced at that size per entry evaluated.
INDEX_ENTRY_BYTES: dict[str, int] = {}


def index_entry(item: dict[str, Any] | None, keys: tuple[str, ...],
                projected: tuple[str, ...] | None) -> dict[str, Any] | None:
    """The item's entry in one GSI (None when it lacks the index key: sparse)."""
    if not item or any(k not in item for k in keys):
        return None
    if projected is None:
        return dict(item)
    wanted = {"pk", "sk", *keys, *projected}
    return {k: v for k, v in item.items() if k in wanted}


def write_units(before: dict[str, Any] | None, after: dict[str, Any] | None,
                transaction: bool = False, parts: Counter[str] | None = None) -> int:
    """Write units of one item write (the larger of the item before and after, per KB; a
    transaction doubles it) and of each GSI entry it changes, per the index's projection.
    `parts` is given each unit by what it wrote: the item's kind (`what_item`) and
    `index:<name>`."""
    parts = Counter() if parts is None else parts
    sizes = [item_size(i) for i in (before, after) if i]
    parts[what_item(before or after)] += _units(max(sizes, default=1), 1024) * (
        2 if transaction else 1)
    for name, (keys, projected) in PROJECTIONS.items():
        old, new = index_entry(before, keys, projected), index_entry(after, keys, projected)
        if old is None and new is None:
            continue
        if old is not None and new is not None:
            if all(old.get(k) == new.get(k) for k in keys):
                units = 0 if old == new else _units(item_size(new), 1024)
            else:
                units = 1 + _units(item_size(new), 1024)  # delete, then put
        else:
            units = _units(item_size(new or old), 1024)
        if units:
            parts[f"index:{name}"] += units
    return sum(parts.values()) if len(parts) else 0


def what_item(item: dict[str, Any] | None) -> str:
    """The kind of item a write touched: the job, the queue-depth or the tenant-quota
    counter (chalicelib/capacity.py), a runId claim."""
    pk = (item or {}).get("pk", {}).get("S", "")
    if pk.startswith("SYS#capacity#"):
        return "queue_depth_counter"
    if pk.startswith("SYS#active#"):
        return "tenant_quota_counter"
    return "run_id" if "#R#" in pk else "job_item"


PROJECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {}
