"""Domain exceptions, each with an HTTP status and a stable code, rendered in one place.

Body shape (the drive seed's): ``{"code", "message", "status", "details"}``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


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


class ServiceUnavailable(HmacfsError):
    status = 503
    code = "SERVICE_UNAVAILABLE"


def problem(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    response = jsonify({"code": code, "message": message, "status": status, "details": details or {}})
    response.status_code = status
    return response


def _http_code(exc: HTTPException) -> str:
    name = (exc.name or "error").upper().replace(" ", "_").replace("'", "")
    return name


def register_error_handlers(app: Flask) -> None:
    """Render domain errors, Flask's own HTTP errors and crashes in the same JSON shape."""

    @app.errorhandler(HmacfsError)
    def _domain(exc: HmacfsError) -> Response:
        response = problem(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = problem(status, _http_code(exc), exc.description or exc.name)
        for key, value in exc.get_headers():
            if key.lower() != "content-type":
                response.headers[key] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        error_id = uuid.uuid4().hex
        log.exception("unhandled error %s", error_id)
        return problem(500, "INTERNAL_ERROR", "internal server error", {"errorId": error_id})
