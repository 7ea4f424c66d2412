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

from botocore.exceptions import ClientError

from .jobs import Job
from .ports import StoreUnavailable, translating

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SHARDS = 16  # 5,000 submits + 5,000 claims a second: ~625 writes/s a shard (tests/test_store.py)
REPAIR_AFTER = 60.0
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
        # DynamoDB applies each conditional write atomically; so does moto wherever we run it
        # (localrunner/motolock.py, installed by local_runtime): no lock of ours around a
        # write (one held across the round trip made 32 concurrent submits take turns).
        self._lock = threading.Lock()
        self._suspect: tuple[float, int] | None = None  # (when, how many looked leaked)

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
        self._db.update_item(TableName=self._table, **kwargs)

    def repair(self, counted: int, queue_holds: int, limit: int) -> int:
        """Called when a submit was refused: `counted` places are taken, and the queue holds
        `queue_holds` messages in all. Places beyond what the queue can hold, seen on two
        looks REPAIR_AFTER apart, were leaked: give them back. Returns how many."""
        now = self._clock()
        gap = counted - queue_holds
        with self._lock:
            if gap <= 0:
                self._suspect = None
                return 0
            if self._suspect is None or now - self._suspect[0] < REPAIR_AFTER:
                if self._suspect is None:
                    self._suspect = (now, gap)
                return 0
            leaked = min(gap, self._suspect[1])
            self._suspect = None
        return self.release("", limit, leaked)


def _home(job_id: str, shards: int) -> int:
    return zlib.crc32(job_id.encode()) % shards
