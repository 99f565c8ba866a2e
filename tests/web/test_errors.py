from __future__ import annotations

import logging

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient

from hmacfs.errors import Conflict


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
