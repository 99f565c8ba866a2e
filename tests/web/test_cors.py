"""CORS on every browser-facing blueprint: preflights, real requests, a foreign origin."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.app import create_app
from hmacfs.config import ConfigError, load_settings
from hmacfs.db import Database
from tests.conftest import make_settings

GOOD = "https://app.example"
EVIL = "https://evil.example"

# (path, method the browser will send, request headers it asks to send)
PREFLIGHTS = {
    "drive": ("/api/files/upload/create", "POST", "authorization, content-type, hmacfs-network"),
    "drive_gateway": ("/drive/files/upload/chunk/t/0", "POST", "authorization, content-digest"),
    "tus": ("/files/", "POST", "tus-resumable, upload-length, upload-metadata, upload-checksum"),
    "tus_patch": ("/files/abc", "PATCH", "tus-resumable, upload-offset, content-type"),
    "chunked": ("/upload/chunked", "PUT", "x-upload-session-id, x-chunk-number, authorization"),
    "chunked_status": ("/upload/status", "GET", "x-upload-session-id"),
    "tasks": ("/api/tasks", "POST", "authorization, content-type"),
    "task_action": ("/api/tasks/abc/pause", "POST", "authorization"),
    "downloads": ("/download/abc", "GET", "range, x-file-password"),
    "multipart": ("/upload", "POST", "authorization"),
    "slots": ("/upload/slot/file.jpg", "PUT", "content-type"),
}


def _client(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], origins: list[str]
) -> FlaskClient:
    settings = make_settings(
        tmp_path / "storage",
        engine.url.render_as_string(hide_password=False),
        server={"cors_allowed_origins": origins},
    )
    return create_app(settings, db=Database(engine=engine, sessions=sessions)).test_client()


@pytest.fixture
def cors(tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]) -> FlaskClient:
    return _client(tmp_path, engine, sessions, [GOOD])


def _preflight(client: FlaskClient, name: str, origin: str) -> tuple[int, dict[str, str]]:
    path, method, headers = PREFLIGHTS[name]
    response = client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )
    return response.status_code, dict(response.headers)


@pytest.mark.parametrize("name", sorted(PREFLIGHTS))
def test_preflight_of_an_allowed_origin_allows_the_method_and_headers(cors: FlaskClient, name: str) -> None:
    status, headers = _preflight(cors, name, GOOD)
    _path, method, asked = PREFLIGHTS[name]
    assert status in (200, 204)
    assert headers["Access-Control-Allow-Origin"] == GOOD
    assert method in headers["Access-Control-Allow-Methods"]
    allowed = {item.strip().lower() for item in headers["Access-Control-Allow-Headers"].split(",")}
    assert {item.strip() for item in asked.split(",")} <= allowed


@pytest.mark.parametrize("name", sorted(PREFLIGHTS))
def test_a_foreign_origin_gets_no_cors_headers(cors: FlaskClient, name: str) -> None:
    _status, headers = _preflight(cors, name, EVIL)
    assert not [key for key in headers if key.lower().startswith("access-control-")]


@pytest.mark.parametrize("name", ["drive", "tus", "tasks", "slots"])
def test_without_configured_origins_nobody_gets_cors_headers(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], name: str
) -> None:
    _status, headers = _preflight(_client(tmp_path, engine, sessions, []), name, GOOD)
    assert not [key for key in headers if key.lower().startswith("access-control-allow")]


def test_tus_creation_exposes_its_headers(cors: FlaskClient, auth: dict[str, str]) -> None:
    response = cors.post(
        "/files/",
        headers={**auth, "Origin": GOOD, "Tus-Resumable": "1.0.0", "Upload-Length": "10"},
    )
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == GOOD
    exposed = {item.strip() for item in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Upload-Offset", "Upload-Length", "Upload-Expires"} <= exposed
    head = cors.head(response.headers["Location"], headers={**auth, "Origin": EVIL, "Tus-Resumable": "1.0.0"})
    assert head.status_code == 200 and "Access-Control-Allow-Origin" not in head.headers


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/api/files/upload/create", 400),
        ("get", "/drive/files/upload/tasks", 200),
        ("get", "/api/tasks", 200),
        ("get", f"/api/tasks/{uuid.uuid4()}", 404),
        ("get", f"/download/{uuid.uuid4()}", 404),
        ("get", "/upload/status", 400),
        ("post", "/upload", 400),
    ],
)
def test_real_requests_and_their_errors_carry_the_origin(
    cors: FlaskClient, auth: dict[str, str], method: str, path: str, status: int
) -> None:
    response = getattr(cors, method)(path, headers={**auth, "Origin": GOOD}, json={})
    assert response.status_code == status
    assert response.headers["Access-Control-Allow-Origin"] == GOOD
    foreign = getattr(cors, method)(path, headers={**auth, "Origin": EVIL}, json={})
    assert foreign.status_code == status and "Access-Control-Allow-Origin" not in foreign.headers


def test_unauthenticated_answers_are_readable_by_the_allowed_page(cors: FlaskClient) -> None:
    response = cors.get("/api/tasks", headers={"Origin": GOOD})
    assert response.status_code == 401 and response.headers["Access-Control-Allow-Origin"] == GOOD


def test_a_wildcard_answers_any_origin_with_a_star(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    client = _client(tmp_path, engine, sessions, ["*"])
    for name in ("tus", "slots"):
        assert _preflight(client, name, EVIL)[1]["Access-Control-Allow-Origin"] == "*"


def test_the_ws_handshake_from_a_foreign_origin_is_refused(cors: FlaskClient) -> None:
    response = cors.get("/ws", headers={"Origin": EVIL, "Connection": "Upgrade", "Upgrade": "websocket"})
    assert response.status_code == 403 and response.get_json()["code"] == "CORS_ORIGIN_DENIED"


def test_origins_must_be_scheme_and_host() -> None:
    with pytest.raises(ConfigError, match=r"server\.cors_allowed_origins"):
        load_settings(
            environ={"HMACFS_SERVER__CORS_ALLOWED_ORIGINS": '["https://app.example/"]'},
            require_secrets=False,
        )
