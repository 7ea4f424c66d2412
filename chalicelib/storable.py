"""What a submit may store: values DynamoDB can hold (422 otherwise, before anything is
written) and a job item small enough for what its lifecycle adds later (413)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .errors import ApiError, validation_error
from .limits import MAX_SUBMITTED_ITEM, storable_number

if TYPE_CHECKING:  # not at cold start: the submit routes build it
    from .models import SubmitRequest

# Documents up to this size are kept in the job item; larger ones in S3 (the 413's message).
INLINE_CONTENT_LIMIT = 64 * 1024


MAX_DEPTH = 30  # DynamoDB nests documents at most 32 levels (the item and input use 2)


def request_values(req: SubmitRequest) -> dict[str, Any]:
    """Every caller-supplied value the job item will hold, as stored (item attribute names)."""
    return {"input": req.input, "variables": req.variables, "runId": req.run_id,
            "callbackUrl": req.callback_url,
            "chain": [{"service": s.service, "input": s.input, "variables": s.variables}
                      for s in req.chain]}


def check_storable(values: dict[str, Any]) -> None:
    """Reject, as 422, values DynamoDB cannot hold; they would otherwise surface as a 503.
    Iterative, so no nesting depth can exhaust the stack before the depth rule answers."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(v, (k,)) for k, v in values.items()]
    while stack:
        value, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            raise _unstorable(loc[:MAX_DEPTH + 1], "nested too deeply")
        if isinstance(value, float) and not math.isfinite(value):
            raise _unstorable(loc, "NaN and Infinity cannot be stored")
        if isinstance(value, int | float) and not isinstance(value, bool) \
                and not storable_number(value):
            raise _unstorable(loc, "numbers have at most 38 significant digits and a "
                                   "magnitude between 1e-130 and 1e126")
        if isinstance(value, str) and not _encodable(value):
            raise _unstorable(loc, "not valid Unicode (lone surrogate)")
        if isinstance(value, dict):
            for k, v in value.items():
                if not k:
                    raise _unstorable(loc, "object keys must not be empty")
                if not _encodable(k):
                    raise _unstorable(loc, "object keys must be valid Unicode (lone surrogate)")
                stack.append((v, (*loc, k)))
        elif isinstance(value, list):
            stack.extend((v, (*loc, i)) for i, v in enumerate(value))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_item_size(size: int) -> None:
    """413 when the job item, as it will be written (`size` bytes), leaves too little room
    for what its lifecycle adds later (limits.LIFECYCLE_RESERVE): such a job could be
    accepted and then be neither run nor canceled."""
    if size > MAX_SUBMITTED_ITEM:
        raise ApiError(413, "payload_too_large",
                       f"the job (input, variables, chain, inline document) takes {size} bytes; "
                       f"at most {MAX_SUBMITTED_ITEM} (send large documents to "
                       "/v1/services/{service}/jobs, where documents over "
                       f"{INLINE_CONTENT_LIMIT} bytes are kept outside the job)")


def _unstorable(loc: tuple[Any, ...], msg: str) -> ApiError:
    return validation_error([{"loc": loc, "msg": msg, "type": "unstorable"}],
                            "the request cannot be stored")
