"""The API's shapes: one pydantic model per body. Routes validate and render with these,
and /openapi.json is generated from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
CallbackState = Literal["none", "pending", "delivered", "failed"]
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,35}$"


class ApiModel(BaseModel):
    # defer_build: a model is compiled on first use, so a function pays only for its own.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              defer_build=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _variables(value: Any) -> Any:
    """Variables are strings (Hop's model); scalars are accepted and stringified."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            if isinstance(v, int | float):
                v = str(v)
            out[k] = v
        return out
    return value


class ChainStep(ApiModel):
    service: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] | None = None
    variables: dict[str, str] = Field(default_factory=dict, max_length=100)

    _coerce = field_validator("variables", mode="before")(_variables)


class SubmitRequest(ApiModel):
    """Body of POST /v1/jobs. Only `service` is required."""

    service: str = Field(min_length=1, max_length=64)
    input: dict[str, Any] | None = None
    variables: dict[str, str] = Field(default_factory=dict, max_length=100)
    run_id: str | None = Field(default=None, max_length=36, pattern=RUN_ID_PATTERN)
    callback_url: str | None = Field(default=None, max_length=2048)
    log_level: int = Field(default=1, ge=0, le=3)
    chain: list[ChainStep] = Field(default_factory=list, max_length=10)

    _coerce = field_validator("variables", mode="before")(_variables)

    @field_validator("variables")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, v in value.items():
            if not name or len(name) > 128 or len(v) > 4096:
                raise ValueError("variable names are 1-128 chars, values at most 4096")
        return value


class Progress(ApiModel):
    percent: float
    message: str | None = None


class JobError(ApiModel):
    code: str
    message: str


class CallbackInfo(ApiModel):
    url: str
    state: CallbackState
    attempts: int = 0
    last_attempt_at: str | None = None
    last_error: str | None = None


class JobResource(ApiModel):
    """A job as clients see it. Input and content are never echoed."""

    job_id: str
    run_id: str | None = None
    service: str
    status: JobStatus
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    duration: float | None = None
    attempts: int = 0
    max_attempts: int
    # Set only while the job waits in the queue after a failed attempt: when it is tried again.
    retry_at: str | None = None
    progress: Progress | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    result_url: str | None = None
    result_type: str | None = None
    result_size: int | None = None
    valid_until: str | None = None
    expires_at: str
    error: JobError | None = None
    log: str
    previous: str | None = None
    next: str | None = None
    callback: CallbackInfo | None = None


class JobList(ApiModel):
    jobs: list[JobResource]
    next_cursor: str | None = Field(default=None)

    def dump(self) -> dict[str, Any]:
        body = super().dump()
        body["nextCursor"] = self.next_cursor  # always present, null on the last page
        return body


class ErrorDetail(ApiModel):
    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)
    loc: list[str | int] = Field(default_factory=list)
    msg: str
    type: str | None = None


class ErrorInfo(ApiModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(ApiModel):
    error: ErrorInfo


class ServiceInfo(ApiModel):
    name: str
    enabled: bool
    description: str
    input_schema: dict[str, Any]
    status_variables: list[str]
    content_variable: str | None = None
    timeout_seconds: int
    result_ttl_seconds: int
    runs_on: Literal["lambda", "worker"] = "lambda"


class ServiceList(ApiModel):
    services: list[ServiceInfo]


class Delivery(ApiModel):
    attempt: int
    at: str
    status_code: int | None = None
    error: str | None = None
    duration_ms: int

    def dump(self) -> dict[str, Any]:
        body = super().dump()
        body.setdefault("statusCode", None)
        body.setdefault("error", None)
        return body


class DeliveryList(ApiModel):
    deliveries: list[Delivery]


class Health(ApiModel):
    status: Literal["ok"] = "ok"
