"""Structured JSON log lines and CloudWatch embedded metrics (EMF), with the stdlib only.

Powertools' Logger and Metrics do the same but cost ~100 ms of import on every cold start
of the API function (measured by `make bench`); these few lines cost nothing. Every line
carries the keys bound for the current record: tenant, jobId, service, attempt."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NAMESPACE = "Jobgate"
_keys: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "jobgate_log_keys", default=None)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        line.update(_keys.get() or {})
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class _Std(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stdout (or stderr) is now (Lambda's, or a test's capture)."""

    def __init__(self, name: str = "stdout"):
        super().__init__()
        self._name = name

    @property
    def stream(self) -> Any:
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def setup(level: int = logging.INFO, stream: str = "stdout") -> None:
    """Route the `jobgate` loggers to stdout as JSON lines. `jobgate` is also Chalice's
    app logger (its app_name): its plain-text handler is replaced."""
    root = logging.getLogger("jobgate")
    if any(isinstance(h, _Std) and h._name == stream for h in root.handlers):
        return
    handler = _Std(stream)
    handler.setFormatter(JsonFormatter())
    root.handlers = [handler]
    root.setLevel(level)
    root.propagate = False


@contextmanager
def bound(**keys: Any) -> Iterator[None]:
    """Add keys to every log line inside the block (one SQS record, one request)."""
    token = _keys.set({**(_keys.get() or {}), **{k: v for k, v in keys.items() if v is not None}})
    try:
        yield
    finally:
        _keys.reset(token)


def bind(**keys: Any) -> None:
    """Add keys for the rest of the current block (e.g. once the job is read)."""
    _keys.set({**(_keys.get() or {}), **{k: v for k, v in keys.items() if v is not None}})


def metric(name: str, value: float = 1, unit: str = "Count", **dimensions: str) -> None:
    """One EMF line: CloudWatch turns it into a metric, with no API call from the Lambda."""
    dims = {"service": "jobgate", **dimensions}
    # The deployment-wide series (what the alarms watch) and, when given, a finer one.
    sets = [["service"]] + ([sorted(dims)] if dimensions else [])
    blob = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": sets,
            "Metrics": [{"Name": name, "Unit": unit}]}]},
        name: value, **dims,
    }
    sys.stdout.write(json.dumps(blob, separators=(",", ":")) + "\n")


def gauge(name: str, value: float, unit: str = "Count", **dimensions: str) -> None:
    """One EMF line with exactly `dimensions` as its one dimension set (no deployment-wide
    series): for a metric an alarm outside this app watches by those dimensions alone."""
    blob = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": NAMESPACE, "Dimensions": [sorted(dimensions)],
            "Metrics": [{"Name": name, "Unit": unit}]}]},
        name: value, **dimensions,
    }
    sys.stdout.write(json.dumps(blob, separators=(",", ":")) + "\n")
