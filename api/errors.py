"""API errors: one JSON shape, {"error": {"code", "message", "field"}}, with the right status."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import ValidationError


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None,
                 headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.field)


def error_body(code: str, message: str, field: Optional[str] = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def bad_request(message: str, field: Optional[str] = None) -> ApiError:
    return ApiError(400, "invalid_request", message, field)


def not_found(message: str, field: Optional[str] = None) -> ApiError:
    return ApiError(404, "not_found", message, field)


def from_validation(exc: ValidationError, prefix: str = "", whole: Optional[str] = None) -> ApiError:
    """400 naming the first invalid field as a dotted path (e.g. "slice.event_limit"); `whole`
    names the field for an error about the object as a whole (e.g. "one of ... is required")."""
    first = exc.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    field = ".".join(p for p in (prefix, path) if p) or whole
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return bad_request(f"{field}: {message}" if field else message, field)
