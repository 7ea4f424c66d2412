"""Memory of the built-in services is bounded by the size of their input: a small upload
cannot make the worker allocate many times its size (on AWS the worker runs other
tenants' jobs of the same SQS batch). Measured with tracemalloc around the handler."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

BOUND = 10  # peak bytes allocated by a handler per byte of input


class Ctx:
    """Just enough of the handler context, in process (no AWS)."""

    def __init__(self, content: bytes | None = None, content_type: str | None = None,
                 variables: dict[str, str] | None = None):
        self.job_id = "01TESTJOB"
        self.content, self.content_type = content, content_type
        self.variables = dict(variables or {})
        self.vars: dict[str, str] = {}
        self.lines: list[str] = []
        self.last_progress: tuple[float, str | None] | None = None

    def log(self, message: str, level: int = 1) -> None:
        self.lines.append(message)

    def progress(self, percent: float, message: str | None = None) -> None:
        self.last_progress = (percent, message)

    def set_variable(self, name: str, value: object) -> None:
        self.vars[name] = str(value)

    @property
    def canceled(self) -> bool:
        return False

    def remaining_seconds(self) -> float:
        return 300.0


def attack_document(fields: int = 1000, rows: int = 5000) -> bytes:
    """The red team's document: a wide header and many one-field rows (~15 KB)."""
    header = ",".join(f"f{i}" for i in range(fields))
    return (header + "\n" + "1\n" * rows).encode()


def peak_of(fn: Any) -> tuple[Any, int]:
    fn()  # once untraced: imports and first-use caches are not the handler's memory
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run_dataload(content: bytes, content_type: str = "text/csv", drain: bool = False,
                 **variables: str) -> Any:
    """(the handler's answer, its context). `drain`: read a streamed result a chunk at a
    time, as the worker's upload does, keeping only its size (so the measure is the
    handler's memory, not a copy of its answer held by the test)."""
    from chalicelib.services import dataload
    from chalicelib.services.base import Result

    ctx = Ctx(content, content_type, variables)
    result = dataload.run(dataload.DataloadInput(), ctx)
    if drain and isinstance(result, Result) and not isinstance(result.body, bytes):
        size = 0
        for chunk in result.body:
            size += len(chunk)
        return size, ctx
    return result, ctx


def as_json(result: Any) -> Any:
    from chalicelib.services.base import Result

    if isinstance(result, Result):
        assert result.content_type == "application/json"
        body = result.body
        return json.loads(body if isinstance(body, bytes) else b"".join(body))
    return result


def test_the_wide_header_attack_stays_within_ten_times_its_size():
    doc = attack_document()
    assert len(doc) < 16_000
    _, peak = peak_of(lambda: run_dataload(doc, drain=True))
    data = as_json(run_dataload(doc)[0])
    assert data["rows"] == 5000 and len(data["fields"]) == 1000
    assert data["fields"]["f0"] == {"count": 5000, "nulls": 0, "min": 1, "max": 1}
    assert data["fields"]["f999"] == {"count": 0, "nulls": 5000, "min": None, "max": None}
    assert peak <= BOUND * len(doc), f"peak {peak} B for a {len(doc)} B document"


@pytest.mark.parametrize("threads", ["1", "4", "16"])
def test_a_plain_csv_and_a_json_array_stay_within_ten_times_their_size(threads):
    csv_doc = ("id,name,score\n" + "".join(f"{i},name{i},{i % 97}\n" for i in range(20_000))
               ).encode()
    json_doc = json.dumps([{"id": i, "name": f"n{i}", "tags": [i, "x"]}
                           for i in range(10_000)]).encode()
    for doc, kind in ((csv_doc, "text/csv"), (json_doc, "application/json")):
        _, peak = peak_of(lambda d=doc, k=kind: run_dataload(d, k, True, threadCount=threads))
        assert as_json(run_dataload(doc, kind, threadCount=threads)[0])["rows"] in (20_000, 10_000)
        assert peak <= BOUND * len(doc), f"{kind}: peak {peak} B for a {len(doc)} B document"


def test_short_rows_still_count_their_missing_fields_as_nulls():
    doc = b"a,b,c\n1,2,3\n4\n\n5,6\n7,8,9,10\n"
    result, ctx = run_dataload(doc)
    data = as_json(result)
    assert data["rows"] == 4 and ctx.vars == {"ROWS_READ": "4", "ROWS_WRITTEN": "4"}
    assert data["fields"]["a"] == {"count": 4, "nulls": 0, "min": 1, "max": 7}
    assert data["fields"]["b"] == {"count": 3, "nulls": 1, "min": 2, "max": 8}
    assert data["fields"]["c"] == {"count": 2, "nulls": 2, "min": 3, "max": 9}


def test_row_selection_and_threads_give_the_same_answer_as_before():
    doc = b"id,v\n" + b"".join(f"{i},{i * 2}\n".encode() for i in range(1, 101))
    answers = []
    for threads in ("1", "3"):
        result, ctx = run_dataload(doc, beginAtRow="10", endAfterRow="60", MAX="20",
                                   threadCount=threads)
        answers.append(as_json(result))
        assert ctx.vars == {"ROWS_READ": "100", "ROWS_WRITTEN": "20"}
        assert ctx.last_progress == (100.0, "rows 20/20")
    assert answers[0] == answers[1]
    assert answers[0] == {"rows": 20, "fields": {
        "id": {"count": 20, "nulls": 0, "min": 10, "max": 29},
        "v": {"count": 20, "nulls": 0, "min": 20, "max": 58}}}


def test_echo_and_snapshot_are_bounded_too():
    from chalicelib.services import echo, snapshot

    data = {"items": [{"n": i, "s": "x" * 20} for i in range(2000)]}
    model = echo.EchoInput.model_validate(data)
    size = len(json.dumps(data))
    _, peak = peak_of(lambda: echo.run(model, Ctx()))
    assert peak <= BOUND * size, f"echo: peak {peak} B for {size} B of input"

    def drain() -> int:
        result = snapshot.run(snapshot.SnapshotInput(rows=200_000), Ctx())
        return sum(len(chunk) for chunk in result.body)

    total, peak = peak_of(drain)
    assert total > 8_000_000  # a multi-MB export ...
    assert peak <= 4_000_000, f"snapshot held {peak} B at once"  # ... never held whole


@pytest.mark.parametrize("doc,message", [
    (b"[1, 2", "not valid JSON"),
    (b'[{"a": 1}] x', "not valid JSON"),
    (b'[{"a": 1}, 2]', "array of objects"),
    (b'{"a": 1}', "array of objects"),
    (b"[" * 5000, "not valid JSON"),
    (b"a,b\n\xff\xfe,1\n", "not UTF-8"),
    (",".join(f"c{i}" for i in range(10_001)).encode() + b"\n1\n", "at most 10000"),
])
def test_bad_documents_fail_with_a_clear_message(doc, message):
    from chalicelib.services.dataload import BadDocument

    with pytest.raises(BadDocument, match=message):
        as_json(run_dataload(doc, "application/json" if doc[:1] in b"[{" else "text/csv")[0])


def test_a_bom_and_duplicate_names_read_as_csv_dictreader_reads_them():
    result, _ = run_dataload(b"\xef\xbb\xbfa,b,a\n1,2,3\n4,5\n")
    assert as_json(result)["fields"] == {
        "a": {"count": 1, "nulls": 1, "min": 3, "max": 3},  # the last "a" column counts
        "b": {"count": 2, "nulls": 0, "min": 2, "max": 5}}
