"""`snapshot`: a large generated CSV export, streamed to S3 in parts (never held whole in
memory), to show multi-MB results through presigned URLs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import register
from .base import Canceled, Context, Result, Service

HEADER = "id,sku,name,quantity,price\n"
ROWS_PER_CHUNK = 20_000


def lines(start: int, stop: int) -> str:
    return "".join(
        f"{i},SKU-{i:08d},Product {i},{(i * 7919) % 1000},{(i * 104729) % 100000 / 100:.2f}\n"
        for i in range(start, stop)
    )


class SnapshotInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: int = Field(ge=1, le=10_000_000)


def run(data: SnapshotInput, ctx: Context) -> Any:
    def chunks() -> Iterator[bytes]:
        yield HEADER.encode()
        for start in range(1, data.rows + 1, ROWS_PER_CHUNK):
            if ctx.canceled:
                raise Canceled()
            stop = min(data.rows + 1, start + ROWS_PER_CHUNK)
            yield lines(start, stop).encode()
            ctx.set_variable("ROWS_WRITTEN", stop - 1)
            ctx.progress(100.0 * (stop - 1) / data.rows, f"rows {stop - 1}/{data.rows}")
        ctx.log(f"wrote {data.rows} rows", level=1)

    return Result(body=chunks(), content_type="text/csv")


register(Service(
    name="snapshot", handler=run, input_model=SnapshotInput, status_variables=("ROWS_WRITTEN",),
    timeout_seconds=830,  # the most a Lambda service may declare (services.base)
    description="Generates a CSV export of `rows` rows, streamed to S3 with multipart upload.",
))
