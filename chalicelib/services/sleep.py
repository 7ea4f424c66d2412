"""`sleep`: the test workhorse — progress in steps, stops when canceled, fails on demand."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import register
from .base import Canceled, Context, Service


class SleepInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(default=1, ge=0, le=600)
    steps: int = Field(default=10, ge=1, le=1000)
    fail: bool = False
    result: Any = None


class SleepFailed(Exception):
    pass


def run(data: SleepInput, ctx: Context) -> Any:
    step = data.seconds / data.steps
    ctx.log(f"sleeping {data.seconds}s in {data.steps} steps", level=1)
    # Progress writes are throttled, and a write carries whatever is pending when it
    # happens. STEP i is therefore set right after progress i-1 (no time passes between
    # them, so it never starts a write of its own) and is written together with progress
    # i, after step i's sleep: every stored state shows the same step twice. The first
    # call of a job always writes: STEP 0, before any progress.
    ctx.set_variable("STEP", 0)
    for i in range(1, data.steps + 1):
        ctx.set_variable("STEP", i)
        if ctx.canceled:
            raise Canceled()
        time.sleep(step)
        ctx.progress(100.0 * i / data.steps, f"step {i}/{data.steps}")
        ctx.log(f"step {i} done", level=3)
    if data.fail:
        raise SleepFailed("failed on request (fail=true)")
    return {"slept": data.seconds, "result": data.result}


register(Service(
    name="sleep", handler=run, input_model=SleepInput, status_variables=("STEP",),
    timeout_seconds=660,
    description="Sleeps `seconds` in `steps` steps, reporting progress; fails when `fail`.",
))
