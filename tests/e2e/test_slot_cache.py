"""The workers' slot GET cache (``hmacfs.xep0363.slot_cache``) across two servers on one
PostgreSQL and one storage directory: a change made anywhere reaches every worker."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, text

from hmacfs.db import make_engine
from tests.e2e.conftest import StartServer
from tests.e2e.test_xep0363 import SECRET, put
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

GETS = 24  # per server, each on a new connection, so both workers of each server answer some


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared-storage")


@pytest.fixture(scope="module")
def servers(start_server: StartServer, e2e_backend: str, storage: Path) -> list[LiveServer]:
    if e2e_backend != "postgresql":
        pytest.skip("the cache runs on PostgreSQL's notices; SQLite caches nothing")
    shared = {"path": str(storage)}
    first = start_server(workers=2, security={"secret": SECRET}, storage=shared)
    second = start_server(
        workers=2, database_url=first.database_url, security={"secret": SECRET}, storage=shared
    )
    return [first, second]


@pytest.fixture
def database(servers: list[LiveServer]) -> Iterator[Engine]:
    engine = make_engine(servers[0].database_url)
    yield engine
    engine.dispose()


def statuses(servers: list[LiveServer], path: str) -> list[int]:
    """The status of GETs of ``path`` on every server, each on a new connection."""
    found = []
    for server in servers:
        for _ in range(GETS):
            with requests.Session() as session:
                found.append(session.get(f"{server.url}/upload/{path}", timeout=10).status_code)
    return found


def stored(servers: list[LiveServer], path: str) -> None:
    assert put(servers[0], path, b"cached bytes").status_code == 201
    assert set(statuses(servers, path)) == {200}  # read, and cached where the worker caches


def test_a_file_deleted_through_sql_is_gone_on_every_worker(
    servers: list[LiveServer], database: Engine
) -> None:
    stored(servers, "cache-del/a.bin")
    with database.begin() as connection:
        connection.execute(text("DELETE FROM files WHERE path = 'cache-del/a.bin'"))
    time.sleep(0.2)  # the notice travels after the commit
    assert set(statuses(servers, "cache-del/a.bin")) == {404}


def test_an_expiry_set_elsewhere_ends_downloads_on_every_worker(
    servers: list[LiveServer], database: Engine
) -> None:
    stored(servers, "cache-exp/a.bin")
    with database.begin() as connection:
        connection.execute(
            text("UPDATE files SET expired_at = now() - interval '1 second' WHERE path = 'cache-exp/a.bin'")
        )
    time.sleep(0.2)
    assert set(statuses(servers, "cache-exp/a.bin")) == {404}


def test_a_moved_blob_is_read_from_its_new_place(
    servers: list[LiveServer], database: Engine, storage: Path, tmp_path: Path
) -> None:
    stored(servers, "cache-move/a.bin")
    with database.begin() as connection:
        key = connection.execute(
            text("SELECT b.storage_key FROM files f JOIN blobs b ON b.id = f.blob_id WHERE f.path = :p"),
            {"p": "cache-move/a.bin"},
        ).scalar_one()
    source = storage / key
    target = tmp_path / key
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    with database.begin() as connection:
        connection.execute(
            text("UPDATE blobs SET storage_root = :root WHERE storage_key = :key"),
            {"root": str(tmp_path), "key": key},
        )
    source.unlink()
    time.sleep(0.2)
    assert set(statuses(servers, "cache-move/a.bin")) == {200}


def test_without_a_notice_the_cache_answers_until_its_entries_age_out(
    servers: list[LiveServer], database: Engine
) -> None:
    """The cache is really used (a change that sends no notice is not seen at once), and an
    entry lives at most 10 s: what a lost notice would leave stale is bounded."""
    stored(servers, "cache-quiet/a.bin")
    with database.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))  # no triggers
        connection.execute(text("DELETE FROM files WHERE path = 'cache-quiet/a.bin'"))
    assert 200 in statuses(servers, "cache-quiet/a.bin")
    time.sleep(10.5)
    assert set(statuses(servers, "cache-quiet/a.bin")) == {404}
