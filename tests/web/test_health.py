from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.app import create_app
from hmacfs.config import Settings
from hmacfs.db import Database, make_engine
from hmacfs.models import Pool
from tests.conftest import make_settings


def test_liveness(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readiness_reports_database_storage_and_counts(client: FlaskClient) -> None:
    response = client.get("/health/uploads")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True and body["database"]["latency_ms"] >= 0
    assert body["storage"]["ok"] is True and body["storage"]["free_bytes"] > 0
    assert isinstance(body["uploads"], dict) and isinstance(body["tasks"], dict)


def test_unwritable_storage_is_503(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], settings: Settings
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the storage directory should be")
    broken = make_settings(blocker / "storage", settings.database.url)
    app: Flask = create_app(broken, db=Database(engine=engine, sessions=sessions))
    response = app.test_client().get("/health/uploads")
    assert response.status_code == 503
    assert response.get_json()["failed"] == ["storage"]


def test_unreachable_database_is_503(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "storage", "postgresql+psycopg2://nobody@127.0.0.1:1/none")
    engine = make_engine(settings.database_url)
    app = create_app(settings, db=Database(engine=engine, sessions=sessionmaker(engine)))
    response = app.test_client().get("/health/uploads")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failed"] == ["database"] and body["database"]["ok"] is False


def test_a_pool_whose_storage_path_is_unusable_is_named_and_503(
    client: FlaskClient, session: Session, tmp_path: Path
) -> None:
    good, blocker = tmp_path / "good-pool", tmp_path / "blocker"
    good.mkdir()
    blocker.write_text("a file where a pool's storage directory should be")
    session.add_all(
        [
            Pool(name="good-pool", storage_path=str(good)),
            Pool(name="broken-pool", storage_path=str(blocker / "store")),
        ]
    )
    session.flush()
    response = client.get("/health/uploads")
    assert response.status_code == 503
    body = response.get_json()
    assert body["failed"] == ["pool:broken-pool"]
    assert body["pools"]["good-pool"]["ok"] is True and body["pools"]["good-pool"]["free_bytes"] > 0
    assert body["pools"]["broken-pool"]["ok"] is False
    assert str(blocker) not in response.get_data(as_text=True)  # paths stay private
