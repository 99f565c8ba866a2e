from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient
from sqlalchemy.orm import sessionmaker

from hmacfs.app import create_app
from hmacfs.db import Database, make_engine
from hmacfs.errors import Conflict
from tests.conftest import bearer, make_settings


@pytest.fixture
def failing_app(app: Flask) -> Flask:
    @app.get("/_test/conflict")
    def conflict() -> None:
        raise Conflict("already there", details={"path": "a/b"}, code="FILE_EXISTS")

    @app.post("/_test/too-large")
    def too_large() -> None:
        abort(413)

    @app.get("/_test/crash")
    def crash() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    return app


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    body = response.get_json()
    assert body["code"] == "NOT_FOUND" and body["status"] == 404 and body["details"] == {}
    assert body["message"]


def test_wrong_method_is_json_405(client: FlaskClient) -> None:
    response = client.delete("/health")
    assert response.status_code == 405
    assert response.get_json()["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in response.headers["Allow"]


def test_domain_error_shape(failing_app: Flask) -> None:
    response = failing_app.test_client().get("/_test/conflict")
    assert response.status_code == 409
    assert response.get_json() == {
        "code": "FILE_EXISTS",
        "message": "already there",
        "status": 409,
        "details": {"path": "a/b"},
    }


def test_crash_is_generic_500_with_error_id(failing_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    failing_app.testing = False  # let the handler answer instead of re-raising
    with caplog.at_level(logging.ERROR):
        response = failing_app.test_client().get("/_test/crash")
    assert response.status_code == 500
    body = response.get_json()
    assert body["code"] == "INTERNAL_ERROR" and body["message"] == "internal server error"
    assert "passwd" not in response.get_data(as_text=True)
    error_id = body["details"]["errorId"]
    assert any(error_id in record.getMessage() for record in caplog.records)


def test_flask_413_has_the_same_shape(failing_app: Flask) -> None:
    response = failing_app.test_client().post("/_test/too-large", data=b"x")
    assert response.status_code == 413
    body = response.get_json()
    assert body["code"] == "REQUEST_ENTITY_TOO_LARGE" and body["status"] == 413


def test_unreachable_database_is_503_with_retry_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection is transient: 503 + Retry-After, no internals, logged with an id."""
    settings = make_settings(tmp_path / "storage", "postgresql+psycopg2://nobody@127.0.0.1:1/none")
    engine = make_engine(settings.database_url)
    app = create_app(settings, db=Database(engine=engine, sessions=sessionmaker(engine)))
    app.testing = False
    with caplog.at_level(logging.WARNING):
        response = app.test_client().get("/api/tasks", headers=bearer(uuid.uuid4()))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    body = response.get_json()
    assert body["code"] == "DATABASE_UNAVAILABLE" and "127.0.0.1" not in response.get_data(as_text=True)
    assert any(body["details"]["errorId"] in record.getMessage() for record in caplog.records)
