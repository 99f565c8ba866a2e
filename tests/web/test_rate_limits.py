"""Rate limits ([rate_limit]) through the Flask app, on both backends: PostgreSQL buckets on
PostgreSQL, in-process buckets on SQLite. Each test uses its own client address, because
PostgreSQL buckets are committed outside the test's rolled-back transaction."""

from __future__ import annotations

import random
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.app import create_app
from hmacfs.config import ConfigError, Settings
from hmacfs.db import Database
from hmacfs.ratelimit import DatabaseBuckets, MemoryBuckets, Take, grant, refill, retry_after
from tests.conftest import bearer, make_settings

API = "/api/files/upload"


def _client(engine: Engine, sessions: sessionmaker[Session], tmp_path: Path, **limits: Any) -> FlaskClient:
    url = engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path / "s", url, rate_limit={"enabled": True, **limits})
    return create_app(settings, db=Database(engine=engine, sessions=sessions)).test_client()


def _address() -> dict[str, dict[str, str]]:
    return {
        "environ_base": {
            "REMOTE_ADDR": f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        }
    }


def test_bucket_arithmetic() -> None:
    take = Take("k", rate=0.5, burst=4)
    assert refill(0, 4, take) == 2 and refill(3, 100, take) == 4 and refill(1, -5, take) == 1
    assert grant(1.0, take) == (True, 0.0) and grant(0.9, take) == (False, 0.9)
    assert grant(0.5, Take("k", 1, 4, cost=0)) == (False, 0.5)  # a look needs one token too
    assert retry_after(0.0, take) == 2 and retry_after(0.9, take) == 1


def test_memory_buckets() -> None:
    buckets = MemoryBuckets()
    take = Take("k", rate=1 / 3600, burst=3)
    assert [buckets.take([take]) for _ in range(3)] == [[], [], []]
    refused = buckets.take([take, Take("other", 1, 1)])
    assert [item.key for item in refused] == ["k"] and refused[0].retry_after > 3000


def test_database_buckets_are_exact_under_concurrency(backend: str, engine: Engine) -> None:
    if backend != "postgresql":
        pytest.skip("shared buckets are PostgreSQL's")
    buckets, key = DatabaseBuckets(engine), f"test:{uuid.uuid4()}"
    granted: list[bool] = []

    def hit() -> None:
        for _ in range(5):
            granted.append(not buckets.take([Take(key, rate=1 / 3600, burst=10)]))

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(granted) == 40 and granted.count(True) == 10


def test_requests_per_address(engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    client = _client(engine, sessions, tmp_path, by_jid=False, burst_size=3, requests_per_minute=1)
    me = _address()
    auth = bearer(uuid.uuid4())
    assert [client.get("/api/tasks", headers=auth, **me).status_code for _ in range(3)] == [200] * 3
    refused = client.get("/api/tasks", headers=auth, **me)
    assert (refused.status_code, refused.json["code"]) == (429, "RATE_LIMITED")
    assert refused.json["details"]["limit"] == "address" and int(refused.headers["Retry-After"]) >= 1
    elsewhere = client.get("/api/tasks", headers=bearer(uuid.uuid4()), **_address())
    assert elsewhere.status_code == 200  # another address and account
    assert client.get("/health", **me).status_code == 200  # monitoring is never limited
    assert 'hmacfs_rate_limited_total{limit="address"} 1.0' in client.get("/metrics").text


def test_requests_per_account(engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    client = _client(engine, sessions, tmp_path, by_ip=False, burst_size=2, requests_per_minute=1)
    mine, theirs = bearer(uuid.uuid4()), bearer(uuid.uuid4())
    assert [client.get("/api/tasks", headers=mine, **_address()).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    assert client.get("/api/tasks", headers=theirs, **_address()).status_code == 200


def test_creates_have_their_own_bucket(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    client, me = _client(engine, sessions, tmp_path, create_burst=2, create_per_minute=1), _address()
    auth = bearer(uuid.uuid4())
    body = {"fileName": "a.txt", "fileSize": 5, "hash": "0" * 64, "contentType": "text/plain"}
    answers = [client.post(f"{API}/create", json=body, headers=auth, **me) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[2].json["details"]["limit"] in ("create-address", "create-account")
    assert client.get(f"{API}/tasks", headers=auth, **me).status_code == 200  # reading is not creating


def test_failed_authentication_locks_the_address(
    engine: Engine, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    client, me = (
        _client(engine, sessions, tmp_path, auth_failures_burst=3, auth_failures_per_minute=1),
        _address(),
    )
    forged = {"Authorization": "Bearer not-a-token"}
    # No credentials at all is not guessing: never counted.
    assert {client.get("/api/tasks", **me).status_code for _ in range(5)} == {401}
    assert [client.get("/api/tasks", headers=forged, **me).status_code for _ in range(3)] == [401] * 3
    locked = client.get("/api/tasks", headers=bearer(uuid.uuid4()), **me)  # even a good token now
    assert (locked.status_code, locked.json["details"]["limit"]) == (429, "auth-failures")
    bad_signature = {
        "X-Signature": "00" * 32,
        "X-Signature-Expires": "9999999999",
        "X-Filename": "a",
        "X-Total-Size": "1",
    }
    other = _address()
    for _ in range(3):
        assert client.post("/upload/chunked", headers=bad_signature, **other).status_code == 403
    assert client.post("/upload/chunked", headers=bad_signature, **other).status_code == 429


def test_whitelists(engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    friend = uuid.uuid4()
    client = _client(
        engine, sessions, tmp_path, burst_size=1, requests_per_minute=1,
        whitelisted_ips=["192.0.2.0/24"], whitelisted_jids=[str(friend)],
    )  # fmt: skip
    inside = {"environ_base": {"REMOTE_ADDR": "192.0.2.7"}}
    assert {
        client.get("/api/tasks", headers=bearer(uuid.uuid4()), **inside).status_code for _ in range(4)
    } == {200}
    me = _address()
    assert {client.get("/api/tasks", headers=bearer(friend), **me).status_code for _ in range(4)} == {200}


def test_database_storage_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"rate_limit\.storage"):
        Settings.model_validate(
            {"rate_limit": {"storage": "database"}, "database": {"url": f"sqlite:///{tmp_path}/x.db"}}
        )
    with pytest.raises(ConfigError, match=r"rate_limit\.whitelisted_ips"):
        from hmacfs.config import load_settings

        config = tmp_path / "c.toml"
        config.write_text('[rate_limit]\nwhitelisted_ips = ["nope"]\n')
        load_settings(config, {}, require_secrets=False)


def test_create_endpoints_exist(app: Any) -> None:
    from hmacfs.web.ratelimit import CREATE_ENDPOINTS

    assert {rule.endpoint for rule in app.url_map.iter_rules()} >= CREATE_ENDPOINTS


def test_unreachable_database_is_503_not_a_pass(tmp_path: Path) -> None:
    from sqlalchemy.orm import sessionmaker as maker

    from hmacfs.db import make_engine

    url = "postgresql+psycopg2://nobody@127.0.0.1:1/none"
    settings = make_settings(tmp_path / "s", url, rate_limit={"enabled": True})
    engine = make_engine(url)
    client = create_app(settings, db=Database(engine=engine, sessions=maker(engine))).test_client()
    answer = client.get("/api/tasks", headers=bearer(uuid.uuid4()))
    assert (answer.status_code, answer.json["code"]) == (503, "DATABASE_UNAVAILABLE")
    assert answer.headers["Retry-After"]
