"""Rendering every error as JSON in one shape: ``{"code", "message", "status", "details"}``.

Domain errors carry their status and code; Flask's own HTTP errors (404, 405,
413, ...) come out in the same shape; anything unexpected is logged with an
error id and answered with a generic 500 that never contains exception text.

This is the one place that maps errors, including what a protocol renders its
own way: tus answers a checksum mismatch with 460 and a busy upload with 423;
a failed XEP-0363 PUT is counted in ``upload_errors_total``.
"""

from __future__ import annotations

import errno
import logging
import uuid
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from hmacfs.errors import HmacfsError
from hmacfs.models.status import Protocol
from hmacfs.ports import LockBusy
from hmacfs.storage import StoreUnavailable
from hmacfs.uploads.engine import ChecksumMismatch
from hmacfs.web.context import services

log = logging.getLogger(__name__)

# The blueprints whose errors render in a protocol's own way (see ``_domain_status``).
TUS_BLUEPRINT = "tus"
XEP0363_BLUEPRINT = "xep0363"
TUS_CHECKSUM_MISMATCH_STATUS = 460  # tus checksum extension
TUS_LOCKED_STATUS = 423


def problem(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    response = jsonify({"code": code, "message": message, "status": status, "details": details or {}})
    response.status_code = status
    return response


def _http_code(exc: HTTPException) -> str:
    name = (exc.name or "error").upper().replace(" ", "_").replace("'", "")
    return name


# Refused or lost connections, an exhausted pool, a deadlock victim: all transient,
# so the client is told to retry rather than shown a crash.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


def database_unavailable(exc: Exception) -> Response:
    """503 DATABASE_UNAVAILABLE with ``Retry-After``, for a DATABASE_UNAVAILABLE error
    raised by a handler or by the request boundary's commit."""
    error_id = uuid.uuid4().hex
    log.warning("database unavailable (%s) %s: %s", type(exc).__name__, error_id, str(exc).splitlines()[0])
    response = problem(
        503, "DATABASE_UNAVAILABLE", "the database is unavailable; retry shortly", {"errorId": error_id}
    )
    response.headers["Retry-After"] = "1"
    return response


def register_error_handlers(app: Flask) -> None:
    """Render domain errors, Flask's own HTTP errors and crashes in the same JSON shape."""

    @app.errorhandler(HmacfsError)
    def _domain(exc: HmacfsError) -> Response:
        _count_xep0363_error(exc)
        _count_quota_refusal(exc)
        response = problem(_domain_status(exc), exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(LockBusy)
    def _busy(exc: LockBusy) -> Response:
        if request.blueprint != TUS_BLUEPRINT:
            return _unexpected(exc)
        return problem(TUS_LOCKED_STATUS, "UPLOAD_LOCKED", "another request is writing this upload; retry")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = problem(status, _http_code(exc), exc.description or exc.name)
        for key, value in exc.get_headers():
            if key.lower() != "content-type":
                response.headers[key] = value
        return response

    app.register_error_handler(OperationalError, database_unavailable)
    app.register_error_handler(InterfaceError, database_unavailable)
    app.register_error_handler(PoolTimeout, database_unavailable)

    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(OSError, _storage_error)
    app.register_error_handler(Exception, _unexpected)


# A full disk or an exhausted quota of the storage file system (on any write path:
# a create's reservation, a body, a blob link): the request is undone and may be
# repeated once space is freed. Any other OSError is a crash.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _storage_error(exc: OSError) -> Response:
    if exc.errno not in NO_SPACE:
        return _unexpected(exc)
    log.warning("storage full: %s", exc.strerror)
    response = problem(507, "INSUFFICIENT_STORAGE", "the server's storage is full; retry later")
    response.headers["Retry-After"] = "60"
    return response


def _store_unavailable(exc: StoreUnavailable) -> Response:
    """The blob store cannot be reached (an object store down): nothing was acknowledged,
    the request may be repeated."""
    log.warning("blob store unavailable: %s", type(exc.__cause__ or exc).__name__)
    response = problem(503, "STORAGE_UNAVAILABLE", "the server's storage is unavailable; retry shortly")
    response.headers["Retry-After"] = "5"
    return response


def _unexpected(exc: Exception) -> Response:
    error_id = uuid.uuid4().hex
    log.exception("unhandled error %s", error_id)
    return problem(500, "INTERNAL_ERROR", "internal server error", {"errorId": error_id})


def _domain_status(exc: HmacfsError) -> int:
    if request.blueprint == TUS_BLUEPRINT and isinstance(exc, ChecksumMismatch):
        return TUS_CHECKSUM_MISMATCH_STATUS
    return exc.status


# The codes of the quotas' refusals (hmacfs.uploads.quotas), counted apart.
QUOTA_CODES = frozenset({"QUOTA_EXCEEDED", "RESERVATION_LIMIT", "STORAGE_QUOTA_EXCEEDED"})


def _count_quota_refusal(exc: HmacfsError) -> None:
    metrics = services().metrics
    if metrics is not None and exc.code in QUOTA_CODES:
        metrics.quota_refusals_total.labels(code=exc.code).inc()


def _count_xep0363_error(exc: HmacfsError) -> None:
    metrics = services().metrics
    if metrics is not None and request.blueprint == XEP0363_BLUEPRINT and request.method == "PUT":
        metrics.upload_errors_total.labels(protocol=Protocol.XEP0363.value, code=exc.code).inc()
