"""`dataload` (Hop's example): profile a POSTed JSON array or CSV document. Honours MAX,
beginAtRow/endAfterRow (1-based, inclusive) and processes rows with threadCount threads."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import register
from .base import Context, Service


class DataloadInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataloadVariables(BaseModel):
    """Hop passes variables as strings; these are checked (and converted) at submit."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    MAX: int | None = Field(default=None, ge=0)
    beginAtRow: int = Field(default=1, ge=1)  # noqa: N815  (Starfish's names)
    endAfterRow: int | None = Field(default=None, ge=1)  # noqa: N815
    threadCount: int = Field(default=1, ge=1, le=16)  # noqa: N815


class BadDocument(ValueError):
    pass


def parse_rows(content: bytes, content_type: str | None) -> list[dict[str, Any]]:
    import csv  # handler-only imports stay out of the API function's cold start
    import io

    text = content.decode("utf-8-sig")
    stripped = text.lstrip()
    if (content_type or "").endswith("json") or stripped.startswith("["):
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise BadDocument(f"the document is not valid JSON: {exc}") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise BadDocument("a JSON document must be an array of objects")
        return rows
    return list(csv.DictReader(io.StringIO(text)))


def _value(v: Any) -> Any:
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return v
    if isinstance(v, str):
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return v
    return json.dumps(v, sort_keys=True)


def _key(v: Any) -> tuple[int, Any]:
    """Numbers sort before text, so mixed columns still have a min and a max."""
    return (0, v) if isinstance(v, int | float) and not isinstance(v, bool) else (1, str(v))


def profile(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    fields: dict[str, dict[str, Any]] = {}
    for row in rows:
        for name, raw in row.items():
            stats = fields.setdefault(name, {"count": 0, "nulls": 0, "min": None, "max": None})
            v = _value(raw)
            if v is None:
                stats["nulls"] += 1
                continue
            stats["count"] += 1
            if stats["min"] is None or _key(v) < _key(stats["min"]):
                stats["min"] = v
            if stats["max"] is None or _key(v) > _key(stats["max"]):
                stats["max"] = v
    return fields


def merge(parts: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, s in part.items():
            t = out.setdefault(name, {"count": 0, "nulls": 0, "min": None, "max": None})
            t["count"] += s["count"]
            t["nulls"] += s["nulls"]
            for k, better in (("min", lambda a, b: _key(a) < _key(b)),
                              ("max", lambda a, b: _key(a) > _key(b))):
                if s[k] is not None and (t[k] is None or better(s[k], t[k])):
                    t[k] = s[k]
    return out


def select(rows: list[dict[str, Any]], v: DataloadVariables) -> list[dict[str, Any]]:
    end = len(rows) if v.endAfterRow is None else min(len(rows), v.endAfterRow)
    chosen = rows[v.beginAtRow - 1:end]
    return chosen if v.MAX is None else chosen[: v.MAX]


def run(_: DataloadInput, ctx: Context) -> Any:
    from concurrent.futures import ThreadPoolExecutor

    variables = DataloadVariables.model_validate(ctx.variables)
    if not ctx.content:
        raise BadDocument("no document was posted (POST it to /v1/services/dataload/jobs)")
    rows = parse_rows(ctx.content, ctx.content_type)
    ctx.set_variable("ROWS_READ", len(rows))
    ctx.log(f"read {len(rows)} rows", level=1)
    chosen = select(rows, variables)
    threads = min(variables.threadCount, max(1, len(chosen)))
    size = -(-len(chosen) // threads) if chosen else 0
    chunks = [chosen[i:i + size] for i in range(0, len(chosen), size)] if size else []
    ctx.log(f"processing {len(chosen)} rows with {threads} thread(s)", level=2)
    done = 0
    parts = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for part, chunk in zip(pool.map(profile, chunks), chunks, strict=True):
            parts.append(part)
            done += len(chunk)
            ctx.set_variable("ROWS_WRITTEN", done)
            ctx.progress(100.0 * done / max(1, len(chosen)), f"rows {done}/{len(chosen)}")
            ctx.log(f"chunk of {len(chunk)} rows done", level=3)
    ctx.set_variable("ROWS_WRITTEN", done)
    return {"rows": done, "fields": merge(parts)}


register(Service(
    name="dataload", handler=run, input_model=DataloadInput, variables_model=DataloadVariables,
    status_variables=("ROWS_READ", "ROWS_WRITTEN"), content_variable="DOCUMENT",
    content_required=True, timeout_seconds=300,
    description="Profiles a posted JSON array or CSV document (row count, per-field "
                "count/nulls/min/max); honours MAX, beginAtRow, endAfterRow, threadCount.",
))
