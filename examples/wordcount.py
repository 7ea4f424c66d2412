"""`wordcount`: counts the words of an uploaded text.

A complete service, written to be copied unchanged into `chalicelib/services/` (it is not
registered until it is there). The declaration at the bottom is all the API function
reads; imports only the handler needs go inside the handler, so they cost only the job
function's cold start."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.services import Canceled, Context, Service, register


class WordcountVariables(BaseModel):
    """Query parameters of `POST /v1/services/wordcount/jobs?TOP=5` (strings, checked at
    submit: a bad TOP answers 422 before any job exists)."""

    model_config = ConfigDict(extra="allow")
    TOP: int = Field(default=10, ge=1, le=1000)


def count_words(data: Any, ctx: Context) -> dict[str, Any]:
    import re  # the handler's own imports: the API function never loads them
    from collections import Counter

    top = WordcountVariables.model_validate(ctx.variables).TOP
    lines = (ctx.content or b"").decode("utf-8", errors="replace").splitlines()
    words: Counter[str] = Counter()
    every = max(1, len(lines) // 20)  # about 20 progress reports, whatever the size
    for n, line in enumerate(lines, start=1):
        if ctx.canceled:  # canceled by the client, or out of time: stop now
            raise Canceled()
        words.update(re.findall(r"[\w']+", line.lower()))
        if n % every == 0 or n == len(lines):
            ctx.progress(100.0 * n / len(lines), f"line {n}/{len(lines)}")
            ctx.set_variable("WORDS", sum(words.values()))
    total = sum(words.values())
    ctx.set_variable("WORDS", total)
    ctx.log(f"{len(lines)} lines, {total} words, {len(words)} distinct", level=1)
    return {"lines": len(lines), "words": total, "distinct": len(words),
            "top": [{"word": w, "count": c} for w, c in words.most_common(top)]}


SERVICE = register(Service(
    name="wordcount",
    description="Counts the words of a posted text: totals and the TOP (default 10) most "
                "frequent words.",
    handler=count_words,
    variables_model=WordcountVariables,
    status_variables=("WORDS",),
    content_variable="TEXT",
    content_required=True,
    timeout_seconds=60,
    max_attempts=2,
))
