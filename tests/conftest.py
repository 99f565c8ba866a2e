"""Fixtures shared by the whole suite.

Database tests run once per backend (``backend`` is parametrised over SQLite
and PostgreSQL). Each test runs inside a transaction that is rolled back; the
app's request commits only release SAVEPOINTs.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.app import create_app
from hmacfs.auth import TokenCodec
from hmacfs.config import Settings
from hmacfs.db import Database, make_engine
from hmacfs.migrate import upgrade
from hmacfs.storage import LocalBlobStore
from hmacfs.storage.copying import Hasher
from tests.pg import PgServer, find_server
from tests.seaweed import SeaweedS3

HMAC_SECRET = "test-hmac-secret"
JWT_SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
BACKENDS = ("sqlite", "postgresql")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def make_settings(storage: Path, database_url: str = "", **sections: dict[str, Any]) -> Settings:
    """Test settings: known secrets, storage under ``storage``, anything else overridable."""
    data = {
        "security": {"secret": HMAC_SECRET, "jwt_secret": JWT_SECRET},
        "storage": {"path": str(storage)},
        "database": {"url": database_url},
        "logging": {"access_log": False},
        "tasks": {"handler_modules": ["tests.tasks.custom_handlers"]},
        # The test client's Host; any other Host gets relative URLs (hmacfs.web.urls).
        "server": {"trusted_hosts": ["localhost"]},
        # Tests send hundreds of requests from one address; tests/web/test_rate_limits.py turns it on.
        "rate_limit": {"enabled": False},
    }
    return Settings.model_validate(_merge(data, sections))


# -- PostgreSQL discovery -------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer | None]:
    server = find_server()
    if server is None:
        message = "NO POSTGRESQL FOUND: running the suite on SQLite only"
        if os.environ.get("CI") == "true":
            pytest.exit(f"{message}; PostgreSQL is mandatory under CI=true", returncode=3)
        sys.stderr.write(f"\n{'!' * 72}\n{message}\n{'!' * 72}\n")
    yield server
    if server is not None:
        server.stop()


# -- SeaweedFS: the real S3 store (tests/seaweed.py) ----------------------------
@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One ``weed mini`` for the run; tests keep to prefixes of their own in its bucket."""
    store = SeaweedS3(tmp_path_factory.mktemp("seaweed")).start()
    yield store
    store.stop()


@pytest.fixture
def own_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A ``weed mini`` of the test's own, for tests that stop or restart it."""
    store = SeaweedS3(tmp_path_factory.mktemp("seaweed-own")).start()
    yield store
    store.stop()


def new_database_url(backend: str, pg_server: PgServer | None, directory: Path) -> str:
    """A fresh, empty database of ``backend``; skips when PostgreSQL is absent."""
    if backend == "postgresql":
        if pg_server is None:
            pytest.skip("PostgreSQL not available")
        return pg_server.create_database()
    return f"sqlite:///{directory / f'hmacfs-{uuid.uuid4().hex[:8]}.db'}"


# -- one migrated database per backend per run ----------------------------------
@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def engine(
    backend: str, pg_server: PgServer | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    url = new_database_url(backend, pg_server, tmp_path_factory.mktemp("db"))
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture
def sessions(connection: Connection) -> sessionmaker[Session]:
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def settings(tmp_path: Path, engine: Engine) -> Settings:
    return make_settings(tmp_path / "storage", engine.url.render_as_string(hide_password=False))


@pytest.fixture
def app(settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> Flask:
    return create_app(settings, db=Database(engine=engine, sessions=sessions))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def part_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every (start, length) range of a part read for hashing (``LocalBlobStore.feed_range``)
    during the test; clear it to count from a later point."""
    reads: list[tuple[int, int]] = []
    original = LocalBlobStore.feed_range

    def counted(store: LocalBlobStore, part: str, hasher: Hasher, start: int, length: int) -> None:
        reads.append((start, length))
        original(store, part, hasher, start, length)

    monkeypatch.setattr(LocalBlobStore, "feed_range", counted)
    return reads


@pytest.fixture
def account() -> uuid.UUID:
    return uuid.uuid4()


def signed_upload(
    path: str, name: str, size: int, *, method: str = "POST", ttl: int = 600, secret: str = HMAC_SECRET
) -> dict[str, str]:
    """The bound X-Signature headers (with X-Filename and X-Total-Size) of an upload of
    ``name`` and ``size`` bytes to ``path``, valid for ``ttl`` seconds."""
    import time

    from hmacfs.upload_signing import SignedUpload, sign_upload

    return sign_upload(secret, SignedUpload(method, path, int(time.time()) + ttl, name, size))


def bearer(account: uuid.UUID, **claims: Any) -> dict[str, str]:
    """Authorization header for ``account`` signed with the test JWT secret."""
    from datetime import timedelta

    codec = TokenCodec("HS256", JWT_SECRET, JWT_SECRET, timedelta(seconds=30))
    return {"Authorization": f"Bearer {codec.issue(account, timedelta(hours=1), **claims)}"}


@pytest.fixture
def auth(account: uuid.UUID) -> dict[str, str]:
    return bearer(account)
