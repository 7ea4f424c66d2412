"""`dataload` (Hop's example): profile a POSTed JSON array or CSV document. Honours MAX,
beginAtRow/endAfterRow (1-based, inclusive) and processes rows with threadCount threads."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import threading
from array import array
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import register
from .base import Context, Result, Service


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


# Memory follows the document, never its header width times its row count: rows are read
# one at a time from the posted bytes (no decoded copy of a CSV document), a short row is
# never padded to the header's width (its missing fields are counted as nulls from a
# histogram of row lengths), per-field figures live in flat arrays, and at most `threads`
# chunks of rows are parsed at any moment, IN_FLIGHT bytes of Python objects in all (a
# row's cost is estimated from its text: a one-character CSV field is a 50-byte str).
MAX_FIELDS = 10_000
IN_FLIGHT = 32 * 1024
JSON_COST = 12  # Python objects per byte of a JSON row's text, roughly
_JSON_START = re.compile(rb"(?:\xef\xbb\xbf)?\s*\[")
_WS = re.compile(r"\s*")
_EXTRA = None  # CSV values beyond the header's width: one field, as csv.DictReader names it

Row = list[str] | dict[str, Any]


class Document:
    """A posted CSV or JSON-array document, read row by row (rows numbered from 1)."""

    def __init__(self, content: bytes, content_type: str | None):
        self.content = content
        self.is_json = (content_type or "").endswith("json") or bool(_JSON_START.match(content))
        self.header: list[str] = []
        self.body_at: int | None = None  # CSV: the byte where the rows after the header start
        self._read = 0

    def rows(self) -> Iterator[tuple[Row, int]]:
        """(row, the memory its objects take, roughly) for every row, in order."""
        try:
            yield from self._json_rows() if self.is_json else self._csv_rows()
        except UnicodeDecodeError as exc:
            raise BadDocument(f"the document is not UTF-8: {exc}") from None

    def _csv_rows(self) -> Iterator[tuple[Row, int]]:
        """The header is parsed once (the first pass); later passes start after it."""
        reader = csv.reader(self._lines(self.body_at or 0))
        if self.body_at is None:
            for row in reader:
                if row:  # blank lines are skipped, header included (as csv.DictReader does)
                    self.header = row
                    break
            self.body_at = self._read
            if len(self.header) > MAX_FIELDS:
                raise BadDocument(
                    f"the header has {len(self.header)} fields; at most {MAX_FIELDS}")
        for row in reader:
            if row:
                yield row, 56 + 57 * len(row) + sum(map(len, row))  # list + its strs

    def _lines(self, start: int) -> Iterator[str]:
        """Decoded lines from byte `start`, counting the bytes handed out (csv.reader takes
        exactly the lines of the row it returns, so the count marks where a row ends)."""
        data = io.BytesIO(self.content)  # shares the bytes, copies nothing
        data.seek(start or (3 if self.content.startswith(codecs.BOM_UTF8) else 0))
        self._read = data.tell()
        for line in data:
            self._read += len(line)
            yield line.decode("utf-8")

    def _json_rows(self) -> Iterator[tuple[Row, int]]:
        text = self.content.decode("utf-8-sig")
        decoder = json.JSONDecoder()
        pos = _WS.match(text).end()  # type: ignore[union-attr]
        if text[pos:pos + 1] != "[":
            raise BadDocument("a JSON document must be an array of objects")
        pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
        first, not_object = True, False
        while True:
            if text[pos:pos + 1] == "]":
                break
            if not first:
                if text[pos:pos + 1] != ",":
                    raise BadDocument(_json_error("expected ',' or ']'", text, pos))
                pos = _WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            first = False
            try:
                row, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise BadDocument(f"the document is not valid JSON: {exc}") from None
            except RecursionError:
                raise BadDocument("the document is not valid JSON: nested too deeply") from None
            not_object = not_object or not isinstance(row, dict)
            if not not_object:  # after a non-object, only the syntax is still checked
                yield row, JSON_COST * (end - pos)
            pos = _WS.match(text, end).end()  # type: ignore[union-attr]
        if _WS.match(text, pos + 1).end() != len(text):  # type: ignore[union-attr]
            raise BadDocument(_json_error("extra data", text, pos + 1))
        if not_object:
            raise BadDocument("a JSON document must be an array of objects")


def _json_error(what: str, text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"the document is not valid JSON: {what}: line {line} (char {pos})"


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


class Profile:
    """count/nulls/min/max per field, in flat arrays indexed by the field's slot (fields in
    the order first seen). Chunks are added under a lock, so any number of threads share
    one profile of a bounded size."""

    def __init__(self, header: list[str]):
        self.names: list[Any] = header  # CSV: slot i is column i (no copy of the header)
        self._shared = True
        self.slots: dict[Any, int] | None = None  # name → slot, made on first need
        n = self.width = len(header)
        self.columns: range | array[int] = range(n)  # column → slot (-1: not counted)
        if len(set(header)) != n:  # duplicate names: the last column counts
            last = {name: i for i, name in enumerate(header)}
            self.columns = array("q", (i if last[name] == i else -1
                                       for i, name in enumerate(header)))
        self.count, self.nulls = array("q", bytes(8 * n)), array("q", bytes(8 * n))
        self.min: list[Any] = [None] * n
        self.max: list[Any] = [None] * n
        self.short: dict[int, int] = {}  # rows shorter than the header, by their length
        self._lock = threading.Lock()

    def _slot(self, name: Any) -> int:
        if self.slots is None:  # of duplicate names, the last column's slot is kept
            self.slots = {n: i for i, n in enumerate(self.names)}
        slot = self.slots.get(name)
        if slot is None:
            if len(self.names) >= MAX_FIELDS:
                raise BadDocument(f"the document has more than {MAX_FIELDS} distinct fields")
            if self._shared:
                self.names, self._shared = list(self.names), False  # not the reader's header
            slot = self.slots[name] = len(self.names)
            self.names.append(name)
            self.count.append(0)
            self.nulls.append(0)
            self.min.append(None)
            self.max.append(None)
        return slot

    def _add(self, slot: int, raw: Any) -> None:
        v = _value(raw)
        if v is None:
            self.nulls[slot] += 1
            return
        self.count[slot] += 1
        low, high = self.min[slot], self.max[slot]
        if low is None or _key(v) < _key(low):
            self.min[slot] = v
        if high is None or _key(v) > _key(high):
            self.max[slot] = v

    def add(self, rows: list[Row]) -> None:
        with self._lock:
            width = self.width
            for row in rows:
                if isinstance(row, dict):
                    for name, raw in row.items():
                        self._add(self._slot(name), raw)
                    continue
                for slot, raw in zip(self.columns, row, strict=False):
                    if slot >= 0:
                        self._add(slot, raw)
                if len(row) < width:
                    self.short[len(row)] = self.short.get(len(row), 0) + 1
                elif len(row) > width:
                    self._add(self._slot(_EXTRA), row[width:])

    def result(self, rows: int) -> Iterator[bytes]:
        """The result document, compact JSON, field by field: never held whole. Once."""
        missing = 0  # rows too short to reach column i: nulls there
        for i, slot in enumerate(self.columns):
            missing += self.short.get(i, 0)
            if slot >= 0:
                self.nulls[slot] += missing
        yield b'{"rows":%d,"fields":{' % rows
        for slot, name in enumerate(self.names):
            stats = {"count": self.count[slot], "nulls": self.nulls[slot],
                     "min": self.min[slot], "max": self.max[slot]}
            yield ((b"," if slot else b"") + json.dumps("null" if name is None else name).encode()
                   + b":" + json.dumps(stats, separators=(",", ":"), default=str).encode())
        yield b"}}"


def select(begin: int, end: int | None, most: int | None, total: int) -> tuple[int, int]:
    """The 1-based rows [first, last] to process (last < first: none)."""
    last = total if end is None else min(total, end)
    if most is not None:
        last = min(last, begin + most - 1)
    return begin, last


def chunks(doc: Document, first: int, last: int, budget: int) -> Iterator[list[Row]]:
    """Rows first..last in chunks whose objects take about `budget` bytes."""
    chunk: list[Row] = []
    size = 0
    for number, (row, cost) in enumerate(doc.rows(), start=1):
        if number > last:
            break
        if number < first:
            continue
        chunk.append(row)
        size += cost
        if size >= budget:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def run(_: DataloadInput, ctx: Context) -> Any:
    variables = DataloadVariables.model_validate(ctx.variables)
    if not ctx.content:
        raise BadDocument("no document was posted (POST it to /v1/services/dataload/jobs)")
    doc = Document(ctx.content, ctx.content_type)
    total = sum(1 for _ in doc.rows())  # a first pass checks the document and counts rows
    ctx.set_variable("ROWS_READ", total)
    ctx.log(f"read {total} rows", level=1)
    first, last = select(variables.beginAtRow, variables.endAfterRow, variables.MAX, total)
    chosen = max(0, last - first + 1)
    threads = min(variables.threadCount, max(1, chosen))
    ctx.log(f"processing {chosen} rows with {threads} thread(s)", level=2)
    profile = Profile(doc.header)
    done = 0

    def finished(rows: int) -> None:
        nonlocal done
        done += rows
        ctx.set_variable("ROWS_WRITTEN", done)
        ctx.progress(100.0 * done / max(1, chosen), f"rows {done}/{chosen}")
        ctx.log(f"chunk of {rows} rows done", level=3)

    # `threads` chunks queued or running and one being read: IN_FLIGHT bytes in all.
    parts = chunks(doc, first, last, IN_FLIGHT // (threads + 1))
    if threads == 1:  # no pool: a chunk at a time, in this thread
        for chunk in parts:
            profile.add(chunk)
            finished(len(chunk))
            del chunk  # before the next one is read
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            running: deque[tuple[Future[None], int]] = deque()
            for chunk in parts:
                if len(running) >= threads:
                    future, rows = running.popleft()
                    future.result()
                    finished(rows)
                running.append((pool.submit(profile.add, chunk), len(chunk)))
                del chunk
            while running:
                future, rows = running.popleft()
                future.result()
                finished(rows)
    ctx.set_variable("ROWS_WRITTEN", done)
    return Result(body=profile.result(done), content_type="application/json")


register(Service(
    name="dataload", handler=run, input_model=DataloadInput, variables_model=DataloadVariables,
    status_variables=("ROWS_READ", "ROWS_WRITTEN"), content_variable="DOCUMENT",
    content_required=True, timeout_seconds=300,
    description="Profiles a posted JSON array or CSV document (row count, per-field "
                "count/nulls/min/max); honours MAX, beginAtRow, endAfterRow, threadCount.",
))
