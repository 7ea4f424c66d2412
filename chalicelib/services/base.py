"""What a service is, and the context its handler runs with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal, Protocol

from pydantic import BaseModel

LEVELS = {0: "none", 1: "low", 2: "medium", 3: "high"}


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


Handler = Callable[[Any, Context], Any]


class Canceled(Exception):
    """Raised by a handler (or the context) to stop a canceled job early."""


@dataclass(frozen=True)
class Service:
    name: str
    handler: Handler | None  # None for runs_on="worker": the code runs in worker processes
    description: str
    input_model: type[BaseModel] | None = None
    status_variables: tuple[str, ...] = ()
    content_variable: str | None = None
    timeout_seconds: int = 300
    result_ttl_seconds: int | None = None
    max_attempts: int | None = None
    variables_model: type[BaseModel] | None = None  # checks Hop-style string variables
    content_required: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    runs_on: Literal["lambda", "worker"] = "lambda"

    def input_schema(self) -> dict[str, Any]:
        if self.input_model is None:
            return {"type": "object"}
        return self.input_model.model_json_schema()
