"""Uploads while the server's database sessions are terminated again and again.

A thread runs ``pg_terminate_backend`` on every session of the server's database
every 0.25 s while Drive, tus and XEP-0363 uploads go on, retrying what is
answered 503. Every answer is a success or a 503 with ``Retry-After`` (never a
500), and every upload ends complete with the right bytes: no completion whose
commit was cut strands its upload.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.e2e.test_resumable import API, CHUNK, blob_sha256
from tests.faults.requests_of import drive_create
from tests.live import LiveServer
from tests.web.test_xep0363 import _query

pytestmark = pytest.mark.e2e
UPLOADS = 12  # per protocol
DEADLINE = 120.0  # seconds for the whole run: every loop below stops by then


@contextmanager
def _terminating_sessions(database_url: str, every: float = 0.25) -> Iterator[list[int]]:
    """Terminate every other session of the database every ``every`` seconds meanwhile;
    yields the running count of terminated sessions."""
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    terminated = [0]
    stop = threading.Event()
    kill = sa.text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    def loop() -> None:
        with engine.connect() as connection:
            while not stop.wait(every):
                terminated[0] += connection.execute(kill).scalar_one()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield terminated
    finally:
        stop.set()
        thread.join(timeout=10)
        engine.dispose()


class _Client:
    """Sends requests, retrying 503 (and connections the server dropped) until a deadline;
    remembers every status it was answered."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.statuses: list[int] = []

    def call(self, send: Callable[..., requests.Response], ok: tuple[int, ...]) -> requests.Response:
        while time.monotonic() < self.deadline:
            try:
                response = send(timeout=10)
            except requests.ConnectionError:
                continue
            self.statuses.append(response.status_code)
            if response.status_code in ok:
                return response
            assert response.status_code == 503, response.text
            assert response.headers.get("Retry-After"), response.headers
            time.sleep(0.05)
        raise AssertionError("deadline passed")


def _drive(server: LiveServer, client: _Client, auth: dict[str, str], payload: bytes) -> str:
    create = drive_create(payload)
    created = client.call(
        partial(requests.post, f"{server.url}{API}/create", headers=auth, json=create), (200,)
    )
    task = created.json()["taskId"]
    raw = {**auth, "Content-Type": "application/octet-stream"}
    for index in range(-(-len(payload) // CHUNK)):
        chunk = payload[index * CHUNK : (index + 1) * CHUNK]
        client.call(
            partial(requests.post, f"{server.url}{API}/chunk/{task}/{index}", data=chunk, headers=raw),
            (200, 409),  # 409 CHUNK_EXISTS: a try answered 503 had committed all the same
        )
    done = client.call(partial(requests.post, f"{server.url}{API}/complete/{task}", headers=auth), (200,))
    got = client.call(partial(requests.get, f"{server.url}{done.json()['url']}", headers=auth), (200,))
    return hashlib.sha256(got.content).hexdigest()


def _tus(server: LiveServer, client: _Client, auth: dict[str, str], payload: bytes) -> Callable[[], str]:
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    create = {**tus, "Upload-Length": str(len(payload))}
    location = client.call(partial(requests.post, f"{server.url}/files/", headers=create), (201,)).headers[
        "Location"
    ]
    url = location if location.startswith("http") else f"{server.url}{location}"
    while (
        offset := int(client.call(partial(requests.head, url, headers=tus), (200,)).headers["Upload-Offset"])
    ) < len(payload):
        patch = {**tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
        # 409: a PATCH answered 503 may have committed all the same; HEAD says where it is.
        client.call(
            partial(requests.patch, url, data=payload[offset : offset + CHUNK], headers=patch), (204, 409)
        )
    # Read once the sessions are left alone: the test's own connection would be cut too.
    return partial(_stored_sha256, server, url.rsplit("/", 1)[-1])


def _stored_sha256(server: LiveServer, task_id: str) -> str:
    """The SHA-256 of the bytes stored for a completed upload (its blob file, read back)."""
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            query = sa.text(
                "SELECT t.status, f.sha256 FROM upload_tasks t JOIN files f ON f.id = t.file_id"
                " WHERE t.task_id = :t"
            )
            status, sha256 = connection.execute(query, {"t": task_id}).one()
    finally:
        engine.dispose()
    assert status == "Completed"
    return blob_sha256(server, sha256)


def _xep(server: LiveServer, client: _Client, number: int, payload: bytes) -> str:
    slot = f"killed/{number}.bin"
    url = f"{server.url}/upload/{slot}?{_query(slot, len(payload))}"
    client.call(partial(requests.put, url, data=payload), (201, 409))  # 409: an earlier try won
    got = client.call(partial(requests.get, f"{server.url}/upload/{slot}"), (200,))
    return hashlib.sha256(got.content).hexdigest()


def test_uploads_complete_while_database_sessions_are_terminated(
    e2e_backend: str, start_server: StartServer
) -> None:
    if e2e_backend != "postgresql":
        pytest.skip("terminating sessions is PostgreSQL's")
    server = start_server(workers=2)
    auth = bearer(uuid.uuid4())
    client = _Client(time.monotonic() + DEADLINE)
    results: list[tuple[str, str | Callable[[], str], str]] = []

    def run(kind: str, upload: Callable[[int, bytes], str | Callable[[], str]]) -> None:
        # Content of its own: the same bytes completed by another protocol would make a
        # Drive create answer "fileExists" instead of starting an upload.
        for number, payload in enumerate(os.urandom(CHUNK * 2 + n) for n in range(UPLOADS)):
            results.append((kind, upload(number, payload), hashlib.sha256(payload).hexdigest()))

    with _terminating_sessions(server.database_url) as terminated:
        workers = [
            threading.Thread(target=run, args=("drive", lambda n, p: _drive(server, client, auth, p))),
            threading.Thread(target=run, args=("tus", lambda n, p: _tus(server, client, auth, p))),
            threading.Thread(target=run, args=("xep", lambda n, p: _xep(server, client, n, p))),
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=DEADLINE + 10)
    assert len(results) == 3 * UPLOADS, server.log()
    stored = [(kind, got if isinstance(got, str) else got(), wanted) for kind, got, wanted in results]
    assert all(got == wanted for _, got, wanted in stored), stored
    assert set(client.statuses) <= {200, 201, 204, 409, 503}, sorted(set(client.statuses))
    assert terminated[0] > 0 and 503 in client.statuses  # the faults really happened
    assert "FileNotFoundError" not in server.log()
