"""Test a service in a plain pytest function, without AWS: `run_service` runs its handler
the way the job worker does (input checked against the declaration, the same context,
the service's timeout enforced, `Retry` and `Canceled` honoured) and hands back what the
job would show: result, progress, status variables and log.

    from chalicelib.testing import run_service

    def test_counts_words():
        run = run_service("wordcount", content=b"a b a")
        assert run.status == "succeeded" and run.result["words"] == 3

A handler's own exceptions propagate (pytest shows them; on AWS the attempt fails and is
retried); a submit the API would refuse raises pydantic's ValidationError."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import services
from .services._deadline import call_with_deadline
from .services.base import LEVELS, Canceled, Result, Retry, Service, TimedOut

Status = Literal["succeeded", "retry", "canceled", "timed_out"]


@dataclass
class ServiceRun:
    status: Status
    result: Any = None  # the handler's value; a `Result`'s body read (JSON parsed) as a client would
    body: bytes | None = None  # the result as the worker would store it
    content_type: str | None = None
    progress: list[tuple[float, str | None]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    retry_after: float | None = None  # set when the handler raised Retry


class TestContext:
    """The handler's `ctx`, recorded in memory (same rules as the worker's)."""

    __test__ = False  # not a pytest class

    def __init__(self, job_id: str, variables: dict[str, str], content: bytes | None,
                 content_type: str | None, log_level: int, deadline: float,
                 canceled: bool | Callable[[], bool]):
        self.job_id, self.variables = job_id, variables
        self.content, self.content_type = content, content_type
        self.lines: list[str] = []
        self.progress_calls: list[tuple[float, str | None]] = []
        self.status_vars: dict[str, str] = {}
        self.closed = False
        self._log_level, self._deadline, self._canceled = log_level, deadline, canceled

    def _check_open(self) -> None:
        if self.closed:
            raise TimedOut("the service's timeout has passed")

    def log(self, message: str, level: int = 1) -> None:
        self._check_open()
        if 0 < level <= self._log_level:
            self.lines.append(f"[{LEVELS.get(level, level)}] {message}")

    def progress(self, percent: float, message: str | None = None) -> None:
        self._check_open()
        self.progress_calls.append((round(float(min(100.0, max(0.0, percent))), 2), message))

    def set_variable(self, name: str, value: object) -> None:
        self._check_open()
        self.status_vars[name] = str(value)

    @property
    def canceled(self) -> bool:
        if self.closed or time.monotonic() >= self._deadline:
            return True
        return self._canceled() if callable(self._canceled) else bool(self._canceled)

    def remaining_seconds(self) -> float:
        return max(0.0, self._deadline - time.monotonic())


def run_service(
    service: str | Service, input: Any = None, *, content: bytes | str | None = None,  # noqa: A002
    content_type: str | None = None, variables: dict[str, Any] | None = None,
    log_level: int = 3, timeout: float | None = None, canceled: bool | Callable[[], bool] = False,
    job_id: str = "job-test",
) -> ServiceRun:
    """Run `service` (a registered name or a `Service`) once. `timeout` defaults to the
    declared `timeout_seconds`; `canceled` (a flag or a function) is what `ctx.canceled`
    reports; `log_level` is the job's logLevel (3 keeps every line)."""
    svc = services.get(service) if isinstance(service, str) else service
    if svc is None:
        raise LookupError(f"no service named {service!r}")
    if svc.handler is None:
        raise ValueError(f"{svc.name} runs on workers: test its worker handler directly")
    data = svc.input_model.model_validate(input or {}) if svc.input_model else input
    strings = {k: str(v) for k, v in (variables or {}).items()}
    if svc.variables_model is not None:
        svc.variables_model.model_validate(strings)
    raw = content.encode() if isinstance(content, str) else content
    if svc.content_required and not raw:
        raise ValueError(f"{svc.name} needs content (the document a client POSTs)")
    deadline = time.monotonic() + float(svc.timeout_seconds if timeout is None else timeout)
    ctx = TestContext(job_id, strings, raw, content_type, log_level, deadline, canceled)
    handler = svc.handler

    def attempt() -> tuple[Any, bytes, str]:
        value = handler(data, ctx)
        if isinstance(value, Result):
            body = value.body
            if not isinstance(body, bytes | bytearray):
                body = body.read() if hasattr(body, "read") else b"".join(body)
            if value.content_type.split(";")[0].strip() == "application/json":
                return json.loads(body), bytes(body), value.content_type  # as a client reads it
            return body, bytes(body), value.content_type
        return value, json.dumps(value, separators=(",", ":"), default=str).encode(), \
            "application/json"

    def close() -> None:
        ctx.closed = True

    outcome = call_with_deadline(attempt, deadline, on_timeout=close, name=svc.name)
    run = ServiceRun(status="succeeded", progress=ctx.progress_calls,
                     variables=ctx.status_vars, log=ctx.lines)
    if outcome.timed_out:
        run.status = "timed_out"
    elif isinstance(outcome.error, Retry):
        run.status, run.retry_after = "retry", outcome.error.after_seconds
    elif isinstance(outcome.error, Canceled):
        run.status = "canceled"
    elif outcome.error is not None:
        raise outcome.error
    else:
        run.result, run.body, run.content_type = outcome.value
    return run


def load_service(path: str | Path) -> Service:
    """The service a module file declares, without adding it to the registry: for testing
    a module that is not (yet) in chalicelib/services/ (e.g. examples/wordcount.py)."""
    path = Path(path)
    name = f"_jobgate_loaded_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    services._load()  # the registry's own modules first, so only this file's service is new
    with services._lock:
        before = (dict(services._REGISTRY), dict(services._ORIGINS))
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
            declared = [s for n, s in services._REGISTRY.items() if before[0].get(n) is not s]
        finally:
            sys.modules.pop(name, None)
            services._REGISTRY.clear()
            services._REGISTRY.update(before[0])
            services._ORIGINS.clear()
            services._ORIGINS.update(before[1])
    if len(declared) != 1:
        raise ValueError(f"{path} declares {len(declared)} services (expected one register())")
    return declared[0]
