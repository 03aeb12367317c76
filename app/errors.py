"""The AppError tree and the one handler that renders {"error": {...}}."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
)
from litestar.exceptions import ValidationException as LitestarValidationException

log = logging.getLogger("astrocal")


class AppError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str = "Invalid or missing credentials") -> None:
        super().__init__(message)


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"

    @classmethod
    def of(cls, noun: str, public_id: str) -> NotFound:
        """`Booking 'bk_…' not found`; an id that is not printable text is not repeated."""
        if public_id.isprintable() and 0 < len(public_id) <= 100:
            return cls(f"{noun} '{public_id}' not found")
        return cls(f"{noun} not found")


class MethodNotAllowed(AppError):
    status, code = 405, "method_not_allowed"


class Conflict(AppError):
    status, code = 409, "conflict"


class SlotUnavailable(Conflict):
    def __init__(self) -> None:
        super().__init__("The requested time slot is not available")


class BookingCapReached(AppError):
    status, code = 409, "booking_cap_reached"

    def __init__(self) -> None:
        super().__init__("The booking cap for this period has been reached")


class AlreadyCancelled(AppError):
    status, code = 409, "already_cancelled"


class SlugTaken(AppError):
    status, code = 409, "slug_taken"


class IdempotencyKeyInUse(AppError):
    status, code = 409, "idempotency_key_in_use"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(AppError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(AppError):
    status, code = 422, "validation_error"

    def __init__(self, details: dict[str, str]) -> None:
        field, message = next(iter(details.items()))
        super().__init__(f"{field}: {message}", details)

    @classmethod
    def field(cls, name: str, message: str) -> ValidationFailed:
        return cls({name: message})


class IdempotencyKeyReused(AppError):
    status, code = 422, "idempotency_key_reused"


class RateLimited(AppError):
    status, code = 429, "rate_limit_exceeded"


class ServiceUnavailable(AppError):
    status, code = 503, "service_unavailable"

    def __init__(self, message: str = "A dependency is unavailable; retry shortly") -> None:
        super().__init__(message, headers={"Retry-After": "5"})


def error_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode({"error": body}),
        status_code=status,
        media_type="application/json",
        headers=headers or {},
    )


def _request_id(request: Request[Any, Any, Any]) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """The one exception handler: AppError and framework errors become the spec's error shape."""
    if isinstance(exc, AppError):
        return error_response(exc.status, exc.body(), exc.headers)
    if isinstance(exc, NotFoundException):
        return error_response(404, NotFound("Resource not found").body())
    if isinstance(exc, MethodNotAllowedException):
        allow = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow", "")
        message = f"Method {request.method} not allowed"
        return error_response(405, MethodNotAllowed(message).body(), {"Allow": allow})
    if isinstance(exc, LitestarValidationException):
        return error_response(422, _validation_from_litestar(exc).body())
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        if exc.status_code == 413:
            return error_response(413, PayloadTooLarge("Request body exceeds 64 KiB").body())
        generic = AppError(exc.detail)
        return error_response(exc.status_code, {**generic.body(), "code": "bad_request"})
    if _is_database_down(exc):
        log.warning("database unavailable: %r", exc)
        unavailable = ServiceUnavailable()
        return error_response(503, unavailable.body(), unavailable.headers)
    rid = _request_id(request)
    log.exception("unhandled error", extra={"request_id": rid})
    body = {
        "code": "internal_error",
        "message": f"An internal error occurred (request id {rid})",
        "details": {},
    }
    return error_response(500, body)


def _validation_from_litestar(exc: LitestarValidationException) -> ValidationFailed:
    details: dict[str, str] = {}
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict):
            key = str(item.get("key") or item.get("source") or "body")
            details.setdefault(key, str(item.get("message", "Invalid value")))
    return ValidationFailed(details or {"body": "Invalid request"})


def _is_database_down(exc: Exception) -> bool:
    import asyncpg

    return isinstance(
        exc,
        ConnectionError
        | OSError
        | asyncpg.CannotConnectNowError
        | asyncpg.InterfaceError
        | asyncpg.ConnectionDoesNotExistError
        | TimeoutError,
    )
