"""`echo`: returns its input unchanged."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from . import register
from .base import Context, Service


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="allow")


def run(data: EchoInput, ctx: Context) -> Any:
    ctx.log("echoing input", level=2)
    return data.model_dump()


register(Service(
    name="echo", handler=run, input_model=EchoInput, timeout_seconds=30,
    description="Returns the input object unchanged.",
))
