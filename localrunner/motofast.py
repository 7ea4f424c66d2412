"""Two costs of the embedded moto that grow with the load, cut (same answers).

1. Its SQS is linear in the queue's depth, not quadratic.

moto reads the clock once per message per look: a queue's message counts (every
SendMessage reads them, through the queue's attributes) and its visible messages (every
ReceiveMessage) cost a few microseconds per queued message each, and a ReceiveMessage
checks each message it returns against the retention period by recomputing all the
queue's attributes three times. With one job per invocation (batch size 1) and 2,000 jobs
queued, a send or a receive took 0.1-0.6 s of the one process's CPU (tests/test_load.py).
Same answers, one clock read per look: the counts and the visible messages compare every
message with one `now`, and the retention check reads the queue's retention period.

2. The moto server finds the service of every request by listing moto's package directory
(about 150 `stat` calls a request): the list is read once (it never changes while we run).

3. A DynamoDB Query on an index sorts the whole table by its key before it picks the
index's items, which it then sorts by the index's key (ending with the table's key, so a
total order): that first sort is skipped (over half of a listing's cost at 10,000 jobs)."""

from __future__ import annotations

import threading
from typing import Any

_PATCHED = "__jobgate_linear__"
REPLACED: dict[str, Any] = {}  # moto's own members, by name (tests/test_motofast.py)


def _messages(self: Any) -> list[Any]:
    from moto.core.utils import unix_time_millis

    now = unix_time_millis()
    return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]


def _delayed(self: Any) -> int:
    from moto.core.utils import unix_time_millis

    now = unix_time_millis()
    return sum(1 for m in self._messages if now < m.delayed_until)


def _not_visible(self: Any) -> int:
    from moto.core.utils import unix_time_millis

    now = unix_time_millis()
    return sum(1 for m in self._messages if not now > m.visible_at)


def _visible(self: Any) -> int:
    return len(_messages(self))


def _within_retention(self: Any, queue_name: str, message: Any) -> bool:
    from moto.core.utils import unix_time

    retention = int(self.get_queue(queue_name).message_retention_period)
    return bool(retention + message.sent_timestamp / 1000 > unix_time())


_unsorted = threading.local()  # set while this thread runs an index Query


def _all_items(self: Any) -> list[Any]:
    if not getattr(_unsorted, "on", False):
        return list(REPLACED["all_items"](self))
    if not self.range_key_attr:
        return list(self.items.values())
    return [item for hash_set in self.items.values() for item in hash_set.values()]


def _query(self: Any, *args: Any, **kwargs: Any) -> Any:
    index_name = kwargs.get("index_name", args[7] if len(args) > 7 else None)
    if not index_name:
        return REPLACED["query"](self, *args, **kwargs)
    _unsorted.on = True
    try:
        return REPLACED["query"](self, *args, **kwargs)
    finally:
        _unsorted.on = False


def install() -> None:
    """Idempotent: replace the few moto members above once per process."""
    try:
        from moto import backends
        from moto.sqs.models import Queue, SQSBackend
    except ImportError:  # no moto here: a runtime against real AWS
        return

    if getattr(Queue, _PATCHED, False):
        return
    from moto.dynamodb.models.table import Table

    REPLACED["all_items"], REPLACED["query"] = Table.all_items, Table.query
    Table.all_items, Table.query = _all_items, _query  # type: ignore[method-assign]
    modules = tuple(backends.list_of_moto_modules())
    REPLACED["list_of_moto_modules"] = backends.list_of_moto_modules
    backends.list_of_moto_modules = lambda: modules
    for name, fget in (("messages", _messages),
                       ("approximate_number_of_messages", _visible),
                       ("approximate_number_of_messages_delayed", _delayed),
                       ("approximate_number_of_messages_not_visible", _not_visible)):
        if isinstance(getattr(Queue, name, None), property):
            REPLACED[name] = getattr(Queue, name)
            setattr(Queue, name, property(fget))
    if hasattr(SQSBackend, "is_message_valid_based_on_retention_period"):
        REPLACED["retention"] = SQSBackend.is_message_valid_based_on_retention_period
        SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
            _within_retention)
    setattr(Queue, _PATCHED, True)
