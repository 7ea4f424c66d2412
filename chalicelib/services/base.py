"""What a service is (its declaration), and the context its handler runs with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:  # annotations only: the registry is imported at cold start, pydantic's
    from pydantic import BaseModel  # BaseModel with the first service module that uses it

LEVELS = {0: "none", 1: "low", 2: "medium", 3: "high"}

# The job function's (`run_jobs`) timeout: .chalice/config.json sets the same figure for
# every stage, and tests/test_services.py checks that it does. Lambda's hard limit is 900 s.
JOB_FUNCTION_TIMEOUT_SECONDS = 900
# Kept free after a handler's deadline: ending the attempt (log, terminal write, the
# message's visibility) must happen before Lambda kills the invocation.
END_MARGIN_SECONDS = 60
# An invocation is never quite whole when a record starts (start-up, earlier records'
# bookkeeping): the longest declaration leaves this much so that a fresh invocation can
# always start it (a record starts only with its whole `timeout_seconds` left).
START_SLACK_SECONDS = 10
# The longest `timeout_seconds` a service that runs in the job Lambda may declare.
MAX_LAMBDA_TIMEOUT_SECONDS = JOB_FUNCTION_TIMEOUT_SECONDS - END_MARGIN_SECONDS - START_SLACK_SECONDS

RunsOn = Literal["lambda", "worker"]


class Context(Protocol):
    """Handed to every handler. `log` keeps a line only when `level` ≤ the job's logLevel."""

    job_id: str
    variables: dict[str, str]
    content: bytes | None
    content_type: str | None

    def log(self, message: str, level: int = 1) -> None: ...
    def progress(self, percent: float, message: str | None = None) -> None: ...
    def set_variable(self, name: str, value: object) -> None: ...
    @property
    def canceled(self) -> bool: ...
    def remaining_seconds(self) -> float: ...


@dataclass
class Result:
    """A handler's answer when it is not plain JSON: bytes or a stream with a type."""

    body: bytes | IO[bytes] | Iterator[bytes]
    content_type: str = "application/octet-stream"


# What a handler returns: a JSON value (stored as application/json) or a Result.
Output = Result | dict[str, Any] | list[Any] | str | int | float | bool | None
# A handler takes its input (an instance of the service's input_model, or the stored JSON
# when it has none: hence Any) and the context.
Handler = Callable[[Any, Context], Output]


class Canceled(Exception):
    """Raised by a handler (or the context) to stop a canceled job early."""


class TimedOut(Canceled):
    """Raised by the context's calls once the handler's `timeout_seconds` has passed: the
    attempt has already ended `timed_out`, so a cooperative handler just stops."""


class Retry(Exception):  # noqa: N818  (the name handlers read: `raise Retry(60)`)
    """Raised by a handler to ask for another attempt in `after_seconds`.

    It uses an attempt, like a failure: `max_attempts` bounds a handler that always asks
    again, and the last attempt leaves the job `failed` (`attempts_exhausted`)."""

    def __init__(self, after_seconds: float, reason: str = ""):
        super().__init__(reason or f"retry in {after_seconds:g}s")
        self.after_seconds = max(0.0, float(after_seconds))
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class Service:
    """A job type's declaration: all the API function needs to list the service and validate
    a submit. Heavy imports belong inside the handler, never at a service module's top."""

    name: str
    description: str
    handler: Handler | None = None  # None for runs_on="worker": the code runs in a worker
    input_model: type[BaseModel] | None = None
    status_variables: tuple[str, ...] = ()
    content_variable: str | None = None
    timeout_seconds: int = 300
    result_ttl_seconds: int | None = None
    max_attempts: int | None = None
    runs_on: RunsOn = "lambda"
    variables_model: type[BaseModel] | None = None  # checks Hop-style string variables
    content_required: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = declaration_problems(self)
        if problems:
            raise ValueError(f"service {self.name!r}: " + "; ".join(problems))

    def input_schema(self) -> dict[str, Any]:
        if self.input_model is None:
            return {"type": "object"}
        return self.input_model.model_json_schema()


def declaration_problems(s: Service) -> list[str]:
    """Why a declaration cannot be honoured (empty when it can)."""
    problems = []
    if not s.name or not s.name.replace("-", "").replace("_", "").isalnum():
        problems.append("the name must be letters, digits, '-' or '_'")
    if s.runs_on not in ("lambda", "worker"):
        problems.append(f"runs_on must be 'lambda' or 'worker', not {s.runs_on!r}")
    if s.timeout_seconds < 1:
        problems.append("timeout_seconds must be at least 1")
    if s.max_attempts is not None and s.max_attempts < 1:
        problems.append("max_attempts must be at least 1")
    if s.runs_on == "lambda":
        if not callable(s.handler):
            problems.append("a service that runs in Lambda needs a handler")
        if s.timeout_seconds > MAX_LAMBDA_TIMEOUT_SECONDS:
            problems.append(
                f"timeout_seconds={s.timeout_seconds} exceeds {MAX_LAMBDA_TIMEOUT_SECONDS} s (the "
                f"job function's {JOB_FUNCTION_TIMEOUT_SECONDS} s minus {END_MARGIN_SECONDS} s to "
                f"end the attempt and {START_SLACK_SECONDS} s of start-up); declare runs_on='worker' "
                "for longer jobs")
    elif s.handler is not None:
        problems.append("a worker service has no handler in the Lambda package "
                        "(its handler is given to the worker)")
    return problems
