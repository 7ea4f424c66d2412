"""Handlers for `jobgate worker` processes started by tests/test_workers_e2e.py (imported by
the worker from the project directory as `tests.worker_handlers:<name>`)."""

from __future__ import annotations

from typing import Any

from examples.worker.report import report

LARGE = 600_000  # bytes of JSON: over the 256 KB inline limit, so it goes through the PUT


def large_report(input: dict[str, Any], ctx: Any) -> Any:  # noqa: A002
    """`report`, with a result too large to send inline."""
    out = report(input, ctx)
    if out is None:
        return None
    return {**out, "padding": "x" * LARGE}
