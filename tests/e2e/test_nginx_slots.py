"""Slot downloads through a real nginx running the shipped ``etc/nginx/hmacfs.conf`` with
``[streaming] x_accel_redirect = true``: nginx sends the bytes with hmacfs's headers, and
its micro-cache of hmacfs's answers serves a deleted file no longer than its bound."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
import requests
from sqlalchemy import Engine, text

from hmacfs.db import make_engine
from hmacfs.xep0363.signing import SignedRequest, signed_query
from tests.e2e.conftest import StartServer
from tests.e2e.nginx_proxy import Nginx
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

SECRET = "nginx-slots-secret"
ORIGIN = "https://web.example"
BOUND = 4  # seconds: the test's proxy_cache_valid, long enough that a prompt GET is cached
BODY = b"hello through nginx\n" * 100


@pytest.fixture(scope="module")
def server(start_server: StartServer, e2e_backend: str) -> LiveServer:
    if e2e_backend != "postgresql":
        pytest.skip("nginx's part does not depend on the database; one backend is enough")
    return start_server(
        security={"secret": SECRET},
        streaming={"x_accel_redirect": True},
        xep0363={"cors_allowed_origins": [ORIGIN]},
        server={"trusted_proxy_count": 1, "trusted_hosts": ["127.0.0.1", "localhost"]},
    )


@pytest.fixture(scope="module")
def nginx(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    proxy = Nginx(
        tmp_path_factory.mktemp("nginx-slots"),
        [f"127.0.0.1:{server.port}"],
        server.workdir / "storage",
        slot_cache_valid=f"{BOUND}s",
    )
    yield proxy.start()
    proxy.stop()


@pytest.fixture(scope="module")
def database(server: LiveServer) -> Iterator[Engine]:
    engine = make_engine(server.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(nginx: Nginx) -> Iterator[requests.Session]:
    with requests.Session() as client:
        client.trust_env = False
        client.verify = str(nginx.cert)
        yield client


def stored(session: requests.Session, nginx: Nginx, content_type: str = "text/plain") -> str:
    """PUT ``BODY`` through nginx to a new slot; its slot path."""
    path = f"{uuid.uuid4().hex}/notes.txt"
    signed = SignedRequest("PUT", path, f"/upload/{path}", len(BODY), content_type)
    query = urlencode(signed_query(SECRET, "v2", signed))
    answer = session.put(
        f"{nginx.url}/upload/{quote(path)}?{query}",
        data=BODY,
        headers={"Content-Type": content_type},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return path


def delete(database: Engine, path: str) -> None:
    with database.begin() as connection:
        assert connection.execute(text("DELETE FROM files WHERE path = :p"), {"p": path}).rowcount == 1


def test_nginx_sends_the_bytes_with_hmacfs_headers(
    session: requests.Session, nginx: Nginx, server: LiveServer
) -> None:
    path = stored(session, nginx)
    direct = requests.get(f"{server.url}/upload/{quote(path)}", headers={"Origin": ORIGIN}, timeout=10)
    assert direct.headers["X-Accel-Redirect"].startswith("/internal/blobs/") and direct.content == b""
    for _ in range(2):  # asking hmacfs, then from the cache
        got = session.get(f"{nginx.url}/upload/{quote(path)}", headers={"Origin": ORIGIN}, timeout=10)
        assert got.status_code == 200 and got.content == BODY
        assert "X-Accel-Redirect" not in got.headers
        for name in (
            "Content-Type", "Content-Disposition", "X-Content-Type-Options", "Content-Security-Policy",
            "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
        ):  # fmt: skip
            assert got.headers.get(name) == direct.headers[name], name
        assert got.headers["X-Request-ID"] != direct.headers["X-Request-ID"]  # nginx's, one per request
    head = session.head(f"{nginx.url}/upload/{quote(path)}", timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(BODY))
    assert "Access-Control-Allow-Origin" not in head.headers  # no Origin: another cache entry
    part = session.get(f"{nginx.url}/upload/{quote(path)}", headers={"Range": "bytes=6-12"}, timeout=10)
    assert part.status_code == 206 and part.content == BODY[6:13]
    assert part.headers["Content-Security-Policy"] == direct.headers["Content-Security-Policy"]
    tag = got.headers["ETag"]
    again = session.get(f"{nginx.url}/upload/{quote(path)}", headers={"If-None-Match": tag}, timeout=10)
    assert again.status_code == 304 and again.content == b""


EXPIRE = "UPDATE files SET expired_at = now() - interval '1 second' WHERE path = :p"


@pytest.mark.parametrize("change", ["DELETE FROM files WHERE path = :p", EXPIRE], ids=["deleted", "expired"])
def test_a_file_gone_in_hmacfs_is_served_no_longer_than_the_bound(
    session: requests.Session, nginx: Nginx, database: Engine, change: str
) -> None:
    """Within the bound the cached answer still hands the bytes over (the cache is used);
    past the bound plus nginx's one-second clock tick, the file is gone."""
    path = stored(session, nginx)
    url = f"{nginx.url}/upload/{quote(path)}"
    cached_at = time.monotonic()
    assert session.get(url, timeout=10).status_code == 200
    with database.begin() as connection:
        assert connection.execute(text(change), {"p": path}).rowcount == 1
    time.sleep(0.3)  # hmacfs's workers have the change's notice: they answer 404 now
    assert session.get(url, timeout=10).content == BODY  # nginx's cached answer, within the bound
    statuses = []
    while time.monotonic() - cached_at < BOUND + 3:
        statuses.append((time.monotonic() - cached_at, session.get(url, timeout=10).status_code))
        if statuses[-1][1] == 404:
            break
        time.sleep(0.1)
    assert statuses[-1][1] == 404, statuses
    assert statuses[-1][0] <= BOUND + 1.5, statuses  # + 1 s clock tick, + slack for the request


def test_a_missing_file_is_not_remembered(session: requests.Session, nginx: Nginx) -> None:
    path = f"{uuid.uuid4().hex}/notes.txt"
    assert session.get(f"{nginx.url}/upload/{quote(path)}", timeout=10).status_code == 404
    path = stored(session, nginx)  # a 404 is not remembered: a new file is served at once
    assert session.get(f"{nginx.url}/upload/{quote(path)}", timeout=10).status_code == 200


def test_a_request_with_authorization_is_never_answered_from_the_cache(
    session: requests.Session, nginx: Nginx, database: Engine
) -> None:
    path = stored(session, nginx)
    url = f"{nginx.url}/upload/{quote(path)}"
    auth = {"Authorization": "Bearer someone"}
    assert session.get(url, headers=auth, timeout=10).status_code == 200
    deleted_at = time.monotonic()
    delete(database, path)
    # hmacfs answers 404 once its workers got the delete's notice, well within the bound
    while session.get(url, headers=auth, timeout=10).status_code != 404:
        assert time.monotonic() - deleted_at < BOUND / 2, "answered from nginx's cache"
        time.sleep(0.05)
    assert session.get(url, timeout=10).status_code == 404  # and stored nothing for others
