"""Make the embedded moto's DynamoDB writes atomic, as DynamoDB's are.

moto checks a write's condition and then applies it in plain Python, without a lock, and
TransactWriteItems copies the table to roll back: two concurrent requests can both pass a
condition that only one may pass (seen: two jobs for one runId from 20 concurrent submits).
Real DynamoDB serializes writes to an item and transactions across items, so the embedded
AWS does the same with one lock around every write and transaction (reads of an item stay
lock-free; a conditional write still sees the state it checks)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    call.__jobgate_locked__ = True  # type: ignore[attr-defined]
    return call


def install() -> None:
    """Idempotent: wrap moto's DynamoDB backend writes once per process."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        method = getattr(DynamoDBBackend, name, None)
        if method is not None and not getattr(method, "__jobgate_locked__", False):
            setattr(DynamoDBBackend, name, _locked(method))
