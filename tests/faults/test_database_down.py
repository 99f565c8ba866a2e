"""PostgreSQL goes away and comes back: quick 503s with Retry-After meanwhile, no 500, no
hang, recovery without a restart, and no acknowledged chunk lost.

The server reaches PostgreSQL through a user-space relay on loopback (``tests.relay``):
"down" resets every open connection and refuses new ones, as a database that
restarts or crashed looks to its clients; "up" lets connections through again.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy.engine import make_url

from tests.conftest import bearer, new_database_url
from tests.e2e.conftest import StartServer
from tests.e2e.test_resumable import API, CHUNK
from tests.faults.requests_of import drive_create
from tests.pg import PgServer
from tests.relay import Relay

pytestmark = pytest.mark.e2e
QUICK = 3.0  # seconds: the longest a request may take to be refused while the database is down


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def database_relay(
    pg_server: PgServer | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Relay, str]]:
    url = make_url(new_database_url("postgresql", pg_server, tmp_path_factory.mktemp("db")))
    relay = Relay(url.port or 5432)
    try:
        yield relay, url.set(port=relay.port).render_as_string(hide_password=False)
    finally:
        relay.close()


def test_requests_get_quick_503s_while_the_database_is_down_and_uploads_go_on_after(
    e2e_backend: str, start_server: StartServer, database_relay: tuple[Relay, str]
) -> None:
    if e2e_backend != "postgresql":
        pytest.skip("a database server that goes away is PostgreSQL's case")
    relay, database_url = database_relay
    server = start_server(workers=2, database_url=database_url)
    auth = bearer(uuid.uuid4())
    raw = {**auth, "Content-Type": "application/octet-stream"}
    payload = os.urandom(CHUNK * 4)
    created = requests.post(f"{server.url}{API}/create", json=drive_create(payload), headers=auth, timeout=10)
    task = created.json()["taskId"]
    for index in (0, 1):
        chunk = payload[index * CHUNK : (index + 1) * CHUNK]
        assert requests.post(
            f"{server.url}{API}/chunk/{task}/{index}", data=chunk, headers=raw, timeout=10
        ).ok

    upstream = relay.target_port
    relay.retarget(_closed_port())
    relay.cut()
    requests_while_down = [
        ("GET", f"{API}/resume/{task}", None),
        ("POST", f"{API}/chunk/{task}/2", payload[2 * CHUNK : 3 * CHUNK]),
        ("POST", f"{API}/complete/{task}", None),
        ("POST", f"{API}/create", None),
        ("GET", "/health/uploads", None),
    ]
    for method, path, body in requests_while_down * 2:
        started = time.monotonic()
        headers = raw if body is not None else auth
        json = drive_create(os.urandom(10)) if path.endswith("/create") else None
        answer = requests.request(
            method, f"{server.url}{path}", data=body, json=json, headers=headers, timeout=30
        )
        took = time.monotonic() - started
        assert answer.status_code == 503 and took < QUICK, (
            method,
            path,
            answer.status_code,
            took,
            answer.text,
        )
        assert path == "/health/uploads" or answer.headers.get("Retry-After"), answer.headers

    relay.retarget(upstream)  # the database is back: no restart of hmacfs
    deadline = time.monotonic() + 30
    while requests.get(f"{server.url}/health/uploads", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover by itself"
        time.sleep(0.2)
    state = requests.get(f"{server.url}{API}/resume/{task}", headers=auth, timeout=10).json()
    assert {0, 1} <= set(state["uploadedChunks"])  # acknowledged before the outage: still there
    for index in state["missingChunks"]:
        chunk = payload[index * CHUNK : (index + 1) * CHUNK]
        assert requests.post(
            f"{server.url}{API}/chunk/{task}/{index}", data=chunk, headers=raw, timeout=10
        ).ok
    done = requests.post(f"{server.url}{API}/complete/{task}", headers=auth, timeout=10)
    assert done.status_code == 200 and done.json()["hash"] == hashlib.sha256(payload).hexdigest()
