"""Rendering every error as JSON in one shape: ``{"code", "message", "status", "details"}``.

Domain errors carry their status and code; Flask's own HTTP errors (404, 405,
413, ...) come out in the same shape; anything unexpected is logged with an
error id and answered with a generic 500 that never contains exception text.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from hmacfs.errors import HmacfsError

log = logging.getLogger(__name__)


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

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def _database_unavailable(exc: Exception) -> Response:
        # Refused or lost connections, an exhausted pool, a deadlock victim: all
        # transient, so the client is told to retry rather than shown a crash.
        error_id = uuid.uuid4().hex
        log.warning(
            "database unavailable (%s) %s: %s", type(exc).__name__, error_id, str(exc).splitlines()[0]
        )
        response = problem(
            503, "DATABASE_UNAVAILABLE", "the database is unavailable; retry shortly", {"errorId": error_id}
        )
        response.headers["Retry-After"] = "1"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        error_id = uuid.uuid4().hex
        log.exception("unhandled error %s", error_id)
        return problem(500, "INTERNAL_ERROR", "internal server error", {"errorId": error_id})
