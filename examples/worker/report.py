"""`report`: the built-in worker service of docs/api.md, run by `jobgate worker`.

    jobgate worker --service report --handler examples.worker.report:report

Input `{"seconds": 1–86400 (default 60), "steps": 1–1000 (default 10), "fail": false}`:
works `seconds` in `steps` equal steps, reporting progress and the status variable `STEP`
after each; stops as soon as the job is canceled; raises after the last step when `fail`.
Result `{"seconds", "steps", "worker": <the worker's id>}`. The server validated the input
against the service's model at submit; the checks here only keep a hand-run job sane.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

MAX_SECONDS = 86400
MAX_STEPS = 1000
CANCEL_POLL_SECONDS = 1.0  # a canceled job stops within about this long


class ReportFailed(Exception):
    """Raised after the last step when the input says `fail`."""


def report(input: dict[str, Any], ctx: Any, sleep: Callable[[float], Any] = time.sleep) -> Any:  # noqa: A002
    seconds = float(input.get("seconds", 60))
    steps = int(input.get("steps", 10))
    if not 1 <= seconds <= MAX_SECONDS or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"seconds must be 1–{MAX_SECONDS} and steps 1–{MAX_STEPS}")
    step = seconds / steps
    ctx.log(f"report: {seconds:g}s in {steps} steps on {ctx.worker_id}", level=1)
    for i in range(1, steps + 1):
        if not _work(step, ctx, sleep):
            ctx.log(f"canceled during step {i}", level=1)
            return None  # nothing is reported for a canceled job
        ctx.set_variable("STEP", i)
        ctx.progress(100.0 * i / steps, f"step {i}/{steps}")
        ctx.log(f"step {i} done", level=3)
    if input.get("fail"):
        raise ReportFailed("failed on request (fail=true)")
    return {"seconds": input.get("seconds", 60), "steps": steps, "worker": ctx.worker_id}


def _work(seconds: float, ctx: Any, sleep: Callable[[float], Any]) -> bool:
    """Spend `seconds` (standing in for real work), looking at `ctx.canceled` every second;
    False when the job was canceled meanwhile."""
    left = seconds
    while left > 0:
        if ctx.canceled:
            return False
        chunk = min(CANCEL_POLL_SECONDS, left)
        sleep(chunk)
        left -= chunk
    return not ctx.canceled
