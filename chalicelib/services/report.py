"""`report`: the built-in worker service, a long job with progress. Only its declaration
lives here: its code runs in worker processes (`examples/worker/report.py`), so the job
Lambda never runs it and its jobs wait for a claim (POST /v1/worker/claim)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from . import register
from .base import Service


class ReportInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(default=60, ge=1, le=86_400)
    steps: int = Field(default=10, ge=1, le=1000)
    fail: bool = False


register(Service(
    name="report", handler=None, runs_on="worker", input_model=ReportInput,
    status_variables=("STEP",), timeout_seconds=86_400,
    description="Runs on a worker: works `seconds` in `steps` steps, reporting progress "
                "after each; fails when `fail`. Minutes or hours long, beyond any Lambda limit.",
))
