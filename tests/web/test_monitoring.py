"""Restricting /metrics and /health/uploads ([metrics] access_token, allowed_networks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.app import create_app
from hmacfs.config import ConfigError, load_settings, redacted
from hmacfs.db import Database
from tests.conftest import make_settings

GUARDED = ("/metrics", "/health/uploads")


def _client(tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], **metrics: Any) -> FlaskClient:
    url = engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path / "s", url, metrics=metrics)
    return create_app(settings, db=Database(engine=engine, sessions=sessions)).test_client()


def test_public_by_default(client: FlaskClient) -> None:
    for path in GUARDED:
        assert client.get(path).status_code == 200, path


def test_token(tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]) -> None:
    client = _client(tmp_path, engine, sessions, access_token="scrape-me")
    for path in GUARDED:
        missing = client.get(path)
        assert (missing.status_code, missing.json["code"]) == (401, "MONITORING_TOKEN_REQUIRED")
        assert client.get(path, headers={"Authorization": "Bearer scrape-mE"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer scrape-me"}).status_code == 200
    assert client.get("/health").status_code == 200  # liveness stays public


def test_allowed_networks(tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]) -> None:
    client = _client(tmp_path, engine, sessions, allowed_networks=["10.0.0.0/8", "::1"])
    for path in GUARDED:
        local = client.get(path)  # the test client comes from 127.0.0.1
        assert (local.status_code, local.json["code"]) == (403, "MONITORING_FORBIDDEN")
        assert client.get(path, environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
        assert client.get(path, environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
        assert client.get(path, environ_base={"REMOTE_ADDR": "::ffff:10.9.9.9"}).status_code == 200
    assert client.get("/health").status_code == 200


def test_both_must_hold(tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]) -> None:
    client = _client(tmp_path, engine, sessions, access_token="t", allowed_networks=["10.0.0.0/8"])
    inside = {"REMOTE_ADDR": "10.0.0.1"}
    assert client.get("/metrics", environ_base=inside).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer t"}).status_code == 403
    assert (
        client.get("/metrics", environ_base=inside, headers={"Authorization": "Bearer t"}).status_code == 200
    )


def test_bad_network_fails_start_up_and_the_token_is_redacted(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[metrics]\nallowed_networks = ["10.0.0.0/33"]\n')
    with pytest.raises(ConfigError, match=r"metrics\.allowed_networks"):
        load_settings(config, {}, require_secrets=False)
    config.write_text('[metrics]\naccess_token = "hush"\n')
    shown = redacted(load_settings(config, {}, require_secrets=False))
    assert shown["metrics"]["access_token"] == "***"
