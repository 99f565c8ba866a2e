"""Domain exceptions, each with an HTTP status and a stable code.

``hmacfs.web.errors`` renders them, in one place, in the drive seed's shape
``{"code", "message", "status", "details"}``. Nothing here needs Flask, so
workers and the CLI raise the same errors without the web stack.
"""

from __future__ import annotations

from typing import Any


class HmacfsError(Exception):
    """Base of every error a client may see. Subclasses set ``status`` and ``code``."""

    status = 500
    code = "INTERNAL_ERROR"
    headers: dict[str, str] = {}

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = {**type(self).headers, **kwargs.pop("headers", {})}
        if "code" in kwargs:
            self.code = kwargs.pop("code")
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")


class BadRequest(HmacfsError):
    status = 400
    code = "BAD_REQUEST"


class ValidationFailed(BadRequest):
    code = "VALIDATION_FAILED"


class Unauthorized(HmacfsError):
    status = 401
    code = "UNAUTHORIZED"
    headers = {"WWW-Authenticate": 'Bearer realm="hmacfs"'}


class Forbidden(HmacfsError):
    status = 403
    code = "FORBIDDEN"


class QuotaExceeded(Forbidden):
    code = "QUOTA_EXCEEDED"


class ReservationLimit(Forbidden):
    """The account holds ``[uploads] max_reserved`` bytes in unfinished uploads already."""

    code = "RESERVATION_LIMIT"


class NotFound(HmacfsError):
    status = 404
    code = "NOT_FOUND"


class Conflict(HmacfsError):
    status = 409
    code = "CONFLICT"


class Gone(HmacfsError):
    status = 410
    code = "GONE"


class LengthRequired(HmacfsError):
    status = 411
    code = "LENGTH_REQUIRED"


class PayloadTooLarge(HmacfsError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class UnprocessableEntity(HmacfsError):
    status = 422
    code = "UNPROCESSABLE_ENTITY"


class HashMismatch(UnprocessableEntity):
    code = "HASH_MISMATCH"


class InsufficientStorage(HmacfsError):
    """The server cannot store more now (its storage quota); the client may retry later."""

    status = 507
    code = "INSUFFICIENT_STORAGE"
    headers = {"Retry-After": "60"}


class ServiceUnavailable(HmacfsError):
    status = 503
    code = "SERVICE_UNAVAILABLE"


class RateLimited(HmacfsError):
    """A rate limit refused the request; ``headers`` carry ``Retry-After``."""

    status = 429
    code = "RATE_LIMITED"
