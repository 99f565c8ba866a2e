"""Liveness and readiness endpoints."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from hmacfs.health import check_uploads
from hmacfs.web.context import db_session, services

health = Blueprint("health", __name__)


@health.get("/health")
def liveness() -> Response:
    return jsonify({"status": "ok"})


@health.get("/health/uploads")
def readiness() -> Response:
    svc = services()
    healthy, report = check_uploads(db_session(), svc.store, svc.settings.storage.min_free_space)
    response = jsonify(report)
    response.status_code = 200 if healthy else 503
    return response
