"""The one error type routes raise; rendered as docs/api.md's error body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def not_found(what: str = "job") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(code: str, message: str) -> ApiError:
    return ApiError(409, code, message)


def validation_error(errors: Sequence[Mapping[str, Any]], message: str = "input is invalid") -> ApiError:
    details = [
        {"loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
         "msg": e.get("msg", ""), "type": e.get("type")}
        for e in errors
    ]
    return ApiError(422, "validation_error", message, details)


def unavailable(message: str, retry_after: int = 5) -> ApiError:
    """A backing service did not answer (503): try again after `retry_after` seconds."""
    return ApiError(503, "unavailable", message, headers={"Retry-After": str(retry_after)})
