"""DynamoDB side of worker jobs: the sparse claim index and the conditional writes of a
lease (claim, heartbeat, release, terminal write). Every state change is conditional on
the lease token and on the lease being live (or, for the watchdog, lapsed), so a worker
whose lease lapsed can change nothing, and a canceled job stays canceled.
The adapter of ports.LeaseStorePort: a lost condition is a Conflict, DynamoDB not
answering a StoreUnavailable."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from .jobs import QUEUED, RUNNING, Job
from .leases import LOG_ITEM_BYTES, MAX_SHUTDOWNS, fitting, log_bytes
from .ports import Conflict, StoreUnavailable, translating
from .store import (
    CLAIM_ATTRS,
    JobStore,
    assignments,
    job_from_item,
    job_pk,
    job_status_key,
    serialize,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INDEX_CLAIMABLE = "byClaimable"
# Condition fragments (placeholders :running, :tok, :now are always bound).
HELD = "#st = :running AND leaseToken = :tok AND leaseUntil >= :now"
LAPSED = "#st = :running AND leaseToken = :tok AND leaseUntil < :now"


def parse_pk(pk: str) -> tuple[str, str] | None:
    """(tenant, job ID) of a job item's key `T#<tenant>#J#<jobId>`."""
    head, sep, job_id = pk.rpartition("#J#")
    if not sep or not head.startswith("T#"):
        return None
    return head[2:], job_id


@translating(StoreUnavailable)  # botocore's errors stay in this module
class LeaseStore:
    def __init__(self, client: DynamoDBClient, table: str):
        self._db, self._table = client, table
        self._jobs = JobStore(client, table)  # gives the quota slot back at the end

    def candidates(self, claim_key: str, now: float, limit: int) -> list[tuple[str, str]]:
        """Claimable jobs of one service, longest waiting first: one Query, no scan."""
        out = self._db.query(
            TableName=self._table, IndexName=INDEX_CLAIMABLE, Limit=limit,
            KeyConditionExpression="claimKey = :k AND availableAt <= :now",
            ExpressionAttributeValues=serialize({":k": claim_key, ":now": now}))
        found = (parse_pk(i["pk"]["S"]) for i in out.get("Items", []))
        return [f for f in found if f]

    def count_due(self, claim_key: str, now: float, cap: int) -> int:
        """How many jobs of one service can be claimed now (queued and due, or running on a
        lapsed lease), counting at most `cap`: one Query page of the sparse index's keys,
        so the cost stays bounded however long the queue."""
        out = self._db.query(
            TableName=self._table, IndexName=INDEX_CLAIMABLE, Limit=cap, Select="COUNT",
            KeyConditionExpression="claimKey = :k AND availableAt <= :now",
            ExpressionAttributeValues=serialize({":k": claim_key, ":now": now}))
        return min(cap, int(out.get("Count", 0)))

    def claim(self, tenant: str, job_id: str, claim_key: str, token: str, now: float,
              until: float, deadline: float) -> Job:
        """A queued, due job → running under this lease (one attempt more)."""
        return self._write(
            tenant, job_id,
            "SET #st = :running, l2pk = :g2, leaseToken = :tok, leaseUntil = :until, "
            "availableAt = :until, claimedAt = :now, runDeadline = :deadline, "
            "attempts = if_not_exists(attempts, :zero) + :one, "
            "startedAt = if_not_exists(startedAt, :now), "
            "statusVars = if_not_exists(statusVars, :novars)",
            "attribute_exists(pk) AND expiresAt > :now AND attempts < maxAttempts AND "
            "#st = :queued AND claimKey = :ck AND availableAt <= :now",
            {":running": RUNNING, ":queued": QUEUED, ":tok": token,
             ":g2": job_status_key(tenant, job_id, RUNNING),
             ":until": until, ":now": now, ":deadline": deadline, ":zero": 0, ":one": 1,
             ":novars": {}, ":ck": claim_key})

    def heartbeat(self, tenant: str, job_id: str, token: str, now: float, until: float,
                  values: dict[str, Any], variables: dict[str, str], lines: list[str],
                  services: tuple[str, ...], check_room: bool = True) -> Job:
        """Extend the lease (never past the run deadline) and record progress, status
        variables and log lines, in one conditional write; lines only while they fit
        (`check_room=False`: the one line saying the log is full, within the margin)."""
        sets, removes, names, vals = assignments(values)
        sets += ["leaseUntil = :until", "availableAt = :until"]
        for i, (name, value) in enumerate(variables.items()):
            sets.append(f"statusVars.#vk{i} = :vv{i}")
            names[f"#vk{i}"], vals[f":vv{i}"] = name, value
        cond = f"{HELD} AND runDeadline >= :until"
        if lines:
            size = log_bytes(lines)
            sets += ["logLines = list_append(if_not_exists(logLines, :nolines), :lines)",
                     "logBytes = if_not_exists(logBytes, :zero) + :lb"]
            vals.update({":nolines": [], ":lines": lines, ":lb": size, ":zero": 0,
                         ":logroom": LOG_ITEM_BYTES - size})
            if check_room:
                cond += " AND (attribute_not_exists(logBytes) OR logBytes <= :logroom)"
                if size > LOG_ITEM_BYTES:  # never fits: fail, so the caller sees the log
                    cond += " AND attribute_not_exists(pk)"
        return self._write(tenant, job_id, _expression(sets, removes),
                           _scoped(cond, services, vals),
                           {**vals, ":running": RUNNING, ":tok": token, ":now": now,
                            ":until": until}, names)

    def release(self, tenant: str, job_id: str, token: str, now: float, available_at: float,
                code: str, message: str, lines: list[str], services: tuple[str, ...],
                lapsed: bool = False, kept: list[str] | None = None,
                given_back: bool = False) -> Job:
        """A failed attempt → queued again, claimable from `available_at`. `lapsed`: the
        watchdog or a claim returning a job whose lease ran out (else the holder's own fail).
        `kept`: the log lines the item holds (read by the caller), so that `lines` are added
        only as far as they fit. `given_back`: the attempt does not count (a worker shut
        down under it), at most MAX_SHUTDOWNS times a job (then Conflict while still held)."""
        vals: dict[str, Any] = {":queued": QUEUED, ":g2": job_status_key(tenant, job_id, QUEUED), ":c": code,
                                ":m": message, ":at": available_at, ":running": RUNNING,
                                ":tok": token, ":now": now}
        sets = ["#st = :queued", "l2pk = :g2", "errorCode = :c", "errorMessage = :m",
                "availableAt = :at"]
        lines = fitting(kept or [], lines)
        if lines:
            sets += ["logLines = list_append(if_not_exists(logLines, :nolines), :lines)",
                     "logBytes = :lb"]
            vals.update({":nolines": [], ":lines": lines,
                         ":lb": log_bytes([*(kept or []), *lines])})
        condition = LAPSED if lapsed else HELD
        if given_back:
            sets += ["attempts = attempts - :one",
                     "shutdowns = if_not_exists(shutdowns, :zero) + :one"]
            vals.update({":one": 1, ":zero": 0, ":maxsd": MAX_SHUTDOWNS})
            condition += " AND (attribute_not_exists(shutdowns) OR shutdowns < :maxsd)"
        return self._write(tenant, job_id,
                           _expression(sets, ["leaseToken", "leaseUntil", "claimedAt",
                                              "runDeadline"]),
                           _scoped(condition, services, vals), vals)

    def finish(self, tenant: str, job_id: str, token: str, status: str, values: dict[str, Any],
               now: float, services: tuple[str, ...], lapsed: bool = False) -> Job:
        """The terminal write of a worker job: leaves the claim index, keeps nothing of the
        lease. Conditional like every other write (a canceled job stays canceled)."""
        sets, removes, names, vals = assignments(values)
        gone = ["leaseToken", "leaseUntil", "logLines", "logBytes", "shutdowns", *CLAIM_ATTRS]
        gone = [g for g in gone if g not in values]
        vals.update({":status": status, ":g2": job_status_key(tenant, job_id, status), ":now": now,
                     ":running": RUNNING, ":tok": token})
        return self._jobs._ended(self._write(
            tenant, job_id,
            _expression(["#st = :status", "l2pk = :g2", "completedAt = :now", *sets],
                        [*gone, *removes]),
            _scoped(LAPSED if lapsed else HELD, services, vals), vals, names))

    def set_content_key(self, tenant: str, job_id: str, key: str) -> None:
        self._db.update_item(
            TableName=self._table, Key=_key(tenant, job_id),
            UpdateExpression="SET contentKey = :k", ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=serialize({":k": key}))

    def drop_claim(self, tenant: str, job_id: str) -> None:
        """Take a finished job out of the claim index (a leftover of an older write path)."""
        try:
            self._db.update_item(
                TableName=self._table, Key=_key(tenant, job_id),
                UpdateExpression="REMOVE claimKey, availableAt",
                ConditionExpression="attribute_exists(pk) AND NOT #st IN (:q, :r)",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues=serialize({":q": QUEUED, ":r": RUNNING}))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def _write(self, tenant: str, job_id: str, update: str, condition: str,
               values: dict[str, Any], names: dict[str, str] | None = None) -> Job:
        names = dict(names or {})
        text = update + " " + condition
        if "#st" in text:
            names["#st"] = "status"
        if "#svc" in text:
            names["#svc"] = "service"
        placeholders = set(re.findall(r":\w+", text))
        used = {k: v for k, v in values.items() if k in placeholders}
        extra: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
        try:
            out = self._db.update_item(
                TableName=self._table, Key=_key(tenant, job_id), UpdateExpression=update,
                ConditionExpression=condition, ExpressionAttributeValues=serialize(used), **extra,
                ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            raise Conflict(job_from_item(item) if item else None) from None
        return job_from_item(out["Attributes"])


def _key(tenant: str, job_id: str) -> dict[str, Any]:
    return serialize({"pk": job_pk(tenant, job_id), "sk": "JOB"})


def _expression(sets: list[str], removes: list[str]) -> str:
    parts = [f"SET {', '.join(sets)}"] if sets else []
    return " ".join(parts + ([f"REMOVE {', '.join(removes)}"] if removes else []))


def _scoped(condition: str, services: tuple[str, ...], values: dict[str, Any]) -> str:
    """Only jobs of the services a worker key may serve (an empty tuple: no limit)."""
    if not services:
        return condition
    names = []
    for i, name in enumerate(services):
        values[f":svc{i}"] = name
        names.append(f":svc{i}")
    return f"{condition} AND #svc IN ({', '.join(names)})"
