"""Back-pressure that holds under a burst: the jobs accepted and not yet started, counted
in DynamoDB. A submit reserves a place with a conditional increment (refused once the
count reaches the limit), and the place is given back when the job leaves the queue (its
first claim by a worker, a cancel while queued, a submit that failed after reserving).
Conditional writes are atomic, so a burst of any size cannot pass the limit.

The count is split over SHARDS items (each its own partition: no hot key); the limit is
split over the shards in use, so the shards' caps add up to exactly the limit. A job's
place is taken on the shard its ID picks (the others only when that one is full) and given
back there first, so both are one write while the count is below the limit.

A place whose release was lost (a Lambda that died between a claim and its release) is
found when submits are refused: a count above what the queue can hold at all (visible +
delayed + in-flight messages), seen twice at least REPAIR_AFTER seconds apart, is given
back. SQS's figures are approximate and lag; a count is only lowered by what both looks
showed too high, so a lag never lets a burst through."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from .jobs import Job
from .leaks import TwoLooks
from .ports import StoreUnavailable, translating

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SHARDS = 16  # 5,000 submits + 5,000 claims a second: ~625 writes/s a shard (tests/test_store.py)
LOOK_EVERY = 10.0  # a tenant's refused submits count its jobs at most this often
_CHECK_FAILED = "ConditionalCheckFailedException"


def shard_caps(limit: int, shards: int = SHARDS) -> list[int]:
    """Each used shard's cap; they add up to `limit` (a limit below `shards` uses fewer)."""
    used = max(1, min(shards, limit))
    base, extra = divmod(max(0, limit), used)
    return [base + (1 if i < extra else 0) for i in range(used)]


def holds_place(job: Job, claimed: bool = False) -> bool:
    """Whether a job holds a reserved place: a client submitted it (a chain's next job is
    not counted) and no worker has started it yet. `claimed`: `job` is as the claim that
    just took it returned it (its attempt already counted)."""
    return job.previous is None and job.attempts - (1 if claimed else 0) == 0


@translating(StoreUnavailable)  # botocore's errors stay in this module
class QueueCapacity:
    def __init__(self, client: DynamoDBClient, table: str, clock: Callable[[], float] = time.monotonic):
        self._db, self._table, self._clock = client, table, clock
        self._lock = threading.Lock()
        # DynamoDB applies each conditional write atomically; moto (tests, the local runner)
        # does not across threads. One write at a time per process keeps both exact; on
        # Lambda a container serves one request at a time anyway.
        self._writing = threading.Lock()
        self._looks = TwoLooks(lambda: self._clock())  # the clock is replaceable in tests

    def _key(self, shard: int) -> dict[str, Any]:
        return {"pk": {"S": f"SYS#capacity#jobs#{shard}"}, "sk": {"S": "COUNT"}}

    def reserve(self, job_id: str, limit: int) -> tuple[bool, int]:
        """Take a place for a job under `limit`: (taken, the count seen when refused)."""
        caps = shard_caps(limit)
        start = _home(job_id, len(caps))
        seen = 0
        for i in range(len(caps)):
            shard = (start + i) % len(caps)
            if caps[shard] <= 0:
                continue
            try:
                self._update(
                    Key=self._key(shard),
                    UpdateExpression="SET n = if_not_exists(n, :zero) + :one",
                    ConditionExpression="attribute_not_exists(n) OR n < :cap",
                    ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"},
                                               ":cap": {"N": str(caps[shard])}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
                return True, 0
            except ClientError as exc:
                if exc.response["Error"]["Code"] != _CHECK_FAILED:
                    raise
                item: dict[str, Any] = exc.response.get("Item", {})  # type: ignore[assignment]
                seen += int(item.get("n", {}).get("N", "0"))
        return False, seen

    def release(self, job_id: str, limit: int, places: int = 1) -> int:
        """Give places back, the job's own shard first (never below zero on any shard);
        returns how many were."""
        given = 0
        start = _home(job_id, len(shard_caps(limit)))
        for i in range(SHARDS):
            shard = (start + i) % SHARDS
            while given < places:
                try:
                    self._update(
                        Key=self._key(shard), UpdateExpression="SET n = n - :one",
                        ConditionExpression="n > :zero",
                        ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}},
                    )
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != _CHECK_FAILED:
                        raise
                    break  # this shard is at zero: the next one
                given += 1
            if given >= places:
                break
        return given

    def _update(self, **kwargs: Any) -> None:
        with self._writing:
            self._db.update_item(TableName=self._table, **kwargs)

    def repair(self, counted: int, queue_holds: int, limit: int) -> int:
        """Called when a submit was refused: `counted` places are taken, and the queue holds
        `queue_holds` messages in all. Places beyond what the queue can hold, seen on two
        looks REPAIR_AFTER apart, were leaked: give them back. Returns how many."""
        leaked = self._looks.leaked("queue", counted - queue_holds)
        return self.release("", limit, leaked) if leaked else 0


def _home(job_id: str, shards: int) -> int:
    return zlib.crc32(job_id.encode()) % shards


# -- the tenant quota (429): each tenant's queued + running jobs, counted ------------------

def _slot_key(tenant: str, shard: int) -> dict[str, Any]:
    return {"pk": {"S": f"SYS#active#{quote(tenant, safe=':')}#{shard}"}, "sk": {"S": "COUNT"}}


@translating(StoreUnavailable)
class TenantSlots:
    """A tenant's active jobs (queued + running), counted where the quota is decided: a
    submit takes a slot with one conditional increment (refused at the tenant's limit, so
    exact across containers and under a burst), and the job's terminal write gives it back
    (success, failure, cancel, dead letter: every end is a conditional write of the store,
    and only the write that ends the job releases). The job item records the shard of its
    slot (`slot`), so the release is one write on that shard; a job without one (a chain's
    next job, a job from before the counter) holds none.

    The count is split over SHARDS items per tenant like the queue's (5,000 submits and
    5,000 ends a second of one tenant stay under a partition's 1,000 writes a second), the
    limit over the shards in use. A slot whose release was lost (a process that died between
    the terminal write and the release) or whose job expired before it ended is found when
    the tenant's submits are refused: `repair` compares the count with the jobs the status
    index holds, and gives back what two looks REPAIR_AFTER apart both showed too many."""

    def __init__(self, client: DynamoDBClient, table: str,
                 clock: Callable[[], float] = time.monotonic):
        self._db, self._table, self._clock = client, table, clock
        self._writing = threading.Lock()  # see QueueCapacity: moto is not atomic across threads
        self._lock = threading.Lock()
        self._looks = TwoLooks(lambda: self._clock())
        self._looked: dict[str, float] = {}  # when each tenant's jobs were last counted

    def reserve(self, tenant: str, job_id: str, limit: int) -> tuple[int | None, int]:
        """(the shard whose slot the job took, None when the tenant is at its limit; the
        count seen when refused). One conditional write on the job's home shard; when that
        shard is full, one read of the tenant's shards and a write only on those with room,
        so a refusal costs one write and a read (8 read units), not a write per shard. The
        read is eventually consistent: it only picks where to try, the conditional write
        decides (a slot freed a moment ago may be missed: a refusal, never an overshoot).
        A limit lowered while jobs hold slots on shards it no longer uses lets those jobs
        run over the new limit until they end."""
        caps = shard_caps(limit)
        home = _home(job_id, len(caps))
        if caps[home] > 0 and self._take(tenant, home, caps[home]):
            return home, 0
        counts = self._counts(tenant, len(caps))
        for shard in sorted(range(len(caps)), key=lambda s: counts[s] - caps[s]):
            if shard == home or counts[shard] >= caps[shard]:
                continue
            if self._take(tenant, shard, caps[shard]):
                return shard, 0
            counts[shard] = caps[shard]  # filled meanwhile
        return None, sum(counts)

    def _take(self, tenant: str, shard: int, cap: int) -> bool:
        try:
            self._update(
                Key=_slot_key(tenant, shard),
                UpdateExpression="SET n = if_not_exists(n, :zero) + :one",
                ConditionExpression="attribute_not_exists(n) OR n < :cap",
                ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"},
                                           ":cap": {"N": str(cap)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != _CHECK_FAILED:
                raise
            return False
        return True

    def _counts(self, tenant: str, shards: int) -> list[int]:
        """Each used shard's count (one BatchGetItem, eventually consistent: a hint of where
        there is room; the conditional write is the check)."""
        keys = [_slot_key(tenant, s) for s in range(shards)]
        counts = [0] * shards
        index = {k["pk"]["S"]: i for i, k in enumerate(keys)}
        request: dict[str, Any] = {self._table: {"Keys": keys, "ProjectionExpression": "pk, n"}}
        while request:
            out = self._db.batch_get_item(RequestItems=request)
            for item in out.get("Responses", {}).get(self._table, []):
                counts[index[item["pk"]["S"]]] = int(item.get("n", {}).get("N", "0"))
            request = dict(out.get("UnprocessedKeys") or {})
        return counts

    def release(self, tenant: str, shard: int) -> bool:
        """Give one slot back on `shard` (never below zero): whether one was."""
        try:
            self._update(Key=_slot_key(tenant, shard), UpdateExpression="SET n = n - :one",
                         ConditionExpression="n > :zero",
                         ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != _CHECK_FAILED:
                raise
            return False
        return True

    def repair(self, tenant: str, counted: int, actual: Callable[[], int]) -> int:
        """Called when a submit was refused: `counted` slots are taken; `actual()` counts
        the live queued + running jobs of the status index (called at most once every
        LOOK_EVERY seconds per tenant and container, so a client hammering at its limit
        does not make every refusal a count). Slots beyond those, seen on two looks
        REPAIR_AFTER apart, were leaked (or their jobs expired): give them back. A count
        only ever goes down by what both looks showed, so a submit between its reservation
        and its job's write (not yet in the index) is never given away."""
        now = self._clock()
        due = self._looks.due(tenant)
        with self._lock:
            last = self._looked.get(tenant)
            if not due and last is not None and now - last < LOOK_EVERY:
                return 0
            self._looked[tenant] = now
        leaked = self._looks.leaked(tenant, counted - actual())
        given = 0
        for shard in range(SHARDS):
            while given < leaked and self.release(tenant, shard):
                given += 1
        return given

    def _update(self, **kwargs: Any) -> None:
        with self._writing:
            self._db.update_item(TableName=self._table, **kwargs)
