"""The example service's tests: plain pytest, no AWS. Once wordcount.py is in
chalicelib/services/, `run_service("wordcount", ...)` finds it by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from chalicelib.testing import load_service, run_service

WORDCOUNT = load_service(Path(__file__).with_name("wordcount.py"))
TEXT = b"the cat and the hat\nThe end\n"


def test_counts_words_and_reports_progress() -> None:
    run = run_service(WORDCOUNT, content=TEXT, variables={"TOP": 2})
    assert run.status == "succeeded"
    assert run.result == {"lines": 2, "words": 7, "distinct": 5,
                          "top": [{"word": "the", "count": 3}, {"word": "cat", "count": 1}]}
    assert run.content_type == "application/json"
    assert run.variables == {"WORDS": "7"}
    assert run.progress[-1] == (100.0, "line 2/2")
    assert run.log == ["[low] 2 lines, 7 words, 5 distinct"]


def test_a_bad_top_is_refused_as_the_api_would() -> None:
    with pytest.raises(ValidationError):
        run_service(WORDCOUNT, content=TEXT, variables={"TOP": "0"})


def test_stops_when_canceled() -> None:
    assert run_service(WORDCOUNT, content=TEXT, canceled=True).status == "canceled"
