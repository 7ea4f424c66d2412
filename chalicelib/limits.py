"""How big a job item may be when it is submitted: DynamoDB's item-size arithmetic, and
the room reserved for what the job's lifecycle writes into the item later.

A job accepted at submit must stay writable until it ends: run, canceled, its webhook
recorded. So the submit bound is DynamoDB's 400 KB minus everything the lifecycle can add
(measured in tests/test_malformed.py against a job taken through every step at the bound)."""

from __future__ import annotations

from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

ITEM_LIMIT = 400 * 1024  # DynamoDB's maximum item size (names and values, UTF-8)

# What the lifecycle adds to an item after its submit, each part at its largest.
LIFECYCLE_RESERVE = {
    # status, timestamps, attempts, lease, result key/type/size, validity, log size/key,
    # next job id, callback counters, index keys rewritten with the new status
    "bookkeeping": 2 * 1024,
    # errorCode + errorMessage (1,000 characters, up to 4 bytes each in UTF-8)
    "error": 4 * 1024 + 128,
    # progress message and the service's status variables
    "progress_and_variables": 4 * 1024,
    # the inline log (at most Settings.inline_log_limit bytes; larger logs go to S3)
    "log": 4 * 1024 + 64,
    # the rendered webhook event: the job resource with its presigned resultUrl and the
    # error above, stored with the terminal state
    "callback_event": 12 * 1024,
    # webhook attempts: each {at, statusCode, error, durationMs} with an error of at most
    # a few hundred bytes, plus callbackLastError
    "deliveries": 48 * 1024,
}
RESERVED = sum(LIFECYCLE_RESERVE.values())
MAX_SUBMITTED_ITEM = ITEM_LIMIT - RESERVED


def item_size(item: dict[str, Any]) -> int:
    """The size DynamoDB charges for a serialized item ({"name": {"S": ...}, ...}), per its
    documented rules; numbers are rounded up, so this never underestimates."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def value_size(value: dict[str, Any]) -> int:
    """One attribute value in DynamoDB's typed JSON form. Iterative: any nesting depth."""
    total, stack = 0, [value]
    while stack:
        typed = stack.pop()
        (kind, v), = typed.items()
        if kind == "S":
            total += len(v.encode("utf-8", "surrogatepass"))
        elif kind == "N":
            total += _number_size(v)
        elif kind == "B":
            total += len(bytes(v))
        elif kind in ("BOOL", "NULL"):
            total += 1
        elif kind == "SS":
            total += sum(len(s.encode("utf-8", "surrogatepass")) for s in v)
        elif kind == "NS":
            total += sum(_number_size(n) for n in v)
        elif kind == "BS":
            total += sum(len(bytes(b)) for b in v)
        elif kind == "M":
            total += 3 + sum(1 + len(k.encode("utf-8", "surrogatepass")) for k in v)
            stack.extend(v.values())
        elif kind == "L":
            total += 3 + len(v)
            stack.extend(v)
    return total


def _number_size(text: str) -> int:
    digits = sum(c.isdigit() for c in str(text).split("e")[0].split("E")[0])
    return (digits + 1) // 2 + 2


# boto3's DYNAMODB_CONTEXT (boto3/dynamodb/types.py), spelled out so the API's checks load
# no AWS SDK: 38 digits, exponent -128..126, and anything it would round is refused.
_DYNAMODB_NUMBERS = Context(Emin=-128, Emax=126, prec=38,
                            traps=[Clamped, Overflow, Inexact, Rounded, Underflow])


def storable_number(value: int | float) -> bool:
    """What boto3's serializer accepts (DynamoDB's 38 digits, exponent -130..125)."""
    if isinstance(value, int) and value.bit_length() > 200:  # > 60 digits; str() is slow
        return False
    try:
        _DYNAMODB_NUMBERS.create_decimal(Decimal(repr(value)) if isinstance(value, float)
                                        else value)
    except (ArithmeticError, ValueError):
        return False
    return True
