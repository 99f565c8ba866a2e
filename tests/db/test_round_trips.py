"""Database round trips per resumable chunk on PostgreSQL, counted on the wire (tests/pg_wire.py).

Issue 20 promised that moving the engine behind its front door keeps issue 4's
counts: five round trips per Drive or chunked chunk and 8.7 database messages
per tus PATCH, on average over a large upload. Issue 19 cut the tus PATCH to four
(the try-lock and the row read in one statement, the range row and the counts in
another): 4.7 on average with events. A chunk that makes a progress
event due adds that event's transaction; the upload here is 100 chunks, so one
chunk in five publishes one (``uploads.progress_min_step`` is 5 %).
"""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from hmacfs.app import create_app
from hmacfs.db import make_engine
from hmacfs.migrate import upgrade
from hmacfs.web.tus_headers import encode_metadata
from tests.conftest import bearer, make_settings
from tests.pg import PgServer
from tests.pg_wire import WireCounter
from tests.web import test_drive as drive

CHUNK = drive.CHUNK
CHUNKS = 100
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def wire(pg_server: PgServer | None) -> Iterator[WireCounter]:
    if pg_server is None:
        pytest.skip("PostgreSQL not available")
    url = pg_server.create_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    counter = WireCounter(url)
    yield counter
    counter.close()


@pytest.fixture
def client(wire: WireCounter, tmp_path: Path) -> FlaskClient:
    return create_app(make_settings(tmp_path / "storage", wire.url)).test_client()


def _counted(wire: WireCounter, send: Callable[[int], TestResponse], index: int) -> int:
    before = wire.queries
    response = send(index)
    assert response.status_code in (200, 204), response.data
    return wire.queries - before


def test_drive_chunk_round_trips(client: FlaskClient, wire: WireCounter) -> None:
    auth = bearer(uuid.uuid4())
    payload = os.urandom(CHUNK * CHUNKS)
    created = drive.create(client, auth, payload)  # chunks of drive.CHUNK
    task = created.json["taskId"]

    def chunk(index: int) -> TestResponse:
        body = payload[index * CHUNK : (index + 1) * CHUNK]
        return drive.send(client, auth, task, index, body, raw=True)

    counts = [_counted(wire, chunk, index) for index in range(CHUNKS)]
    # Without an event due: the task, whether the chunk is recorded, the recording WITH.
    assert statistics.mode(counts) == 3, (counts, wire.texts[-10:])
    assert statistics.mean(counts) <= 5, counts


def test_tus_patch_round_trips(client: FlaskClient, wire: WireCounter) -> None:
    auth = bearer(uuid.uuid4())
    created = client.post(
        "/files/",
        headers={
            **TUS,
            **auth,
            "Upload-Length": str(CHUNK * CHUNKS),
            "Upload-Metadata": encode_metadata({"filename": "a.bin"}),
        },
    )
    url = created.headers["Location"].removeprefix("http://localhost")
    payload = os.urandom(CHUNK * CHUNKS)
    stream = {**TUS, **auth, "Content-Type": "application/offset+octet-stream"}

    def patch(index: int) -> TestResponse:
        body = payload[index * CHUNK : (index + 1) * CHUNK]
        return client.patch(url, data=body, headers={**stream, "Upload-Offset": str(index * CHUNK)})

    counts = [_counted(wire, patch, index) for index in range(CHUNKS)]
    # Without an event due: BEGIN, the upload read FOR UPDATE under its try-lock, the
    # recording WITH (range row and counts), COMMIT.
    assert statistics.mode(counts) == 4, (counts, wire.texts[-10:])
    assert statistics.mean(counts) <= 5, counts
