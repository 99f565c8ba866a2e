"""An abandoned reservation on a small disk: one create of 30 MiB on a 32 MiB disk, no byte
sent. Other clients get 507 (not 500) until the reservation times out; the cleanup step
(driven here with a ``now`` past ``[uploads] reservation_timeout``) frees the space, and
the first upload still completes.

The server's storage is a 32 MiB tmpfs mounted by the test (the suite runs as root).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from hmacfs.composition import build_services
from hmacfs.config import load_settings
from hmacfs.uploads.reservations import release_idle_reservations
from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.faults.conftest import tmpfs
from tests.live import LiveServer

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024


@pytest.fixture
def disk_32m(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "32m") as mount:
        yield mount


def _tus_create(server: LiveServer, auth: dict[str, str], size: int) -> requests.Response:
    headers = {**auth, "Tus-Resumable": "1.0.0", "Upload-Length": str(size)}
    return requests.post(f"{server.url}/files/", headers=headers, timeout=30)


def _drive_create(server: LiveServer, auth: dict[str, str], size: int) -> requests.Response:
    body = {
        "fileName": "b.bin",
        "fileSize": size,
        "contentType": "application/octet-stream",
        "hash": "0" * 64,
    }
    return requests.post(f"{server.url}/api/files/upload/create", json=body, headers=auth, timeout=30)


def _release_reservations(server: LiveServer, later: timedelta) -> int:
    """Run the cleanup step in this process against the server's database and storage,
    with a clock ``later`` in the future."""
    services = build_services(load_settings(server.config_path))
    try:
        with services.db.sessions() as session:
            released = release_idle_reservations(session, services, services.clock.now() + later)
            session.commit()
        return released
    finally:
        services.db.engine.dispose()


def test_an_abandoned_reservation_is_freed_and_its_upload_still_completes(
    start_server: StartServer, disk_32m: Path
) -> None:
    server = start_server(workers=2, storage={"path": str(disk_32m), "min_free_space": "1MB"})
    first_auth = bearer(uuid.uuid4())
    payload = os.urandom(30 * MiB)
    created = _tus_create(server, first_auth, len(payload))
    assert created.status_code == 201, created.text
    location = urlsplit(created.headers["Location"]).path

    others = bearer(uuid.uuid4())
    for refused in (_drive_create(server, others, 4 * MiB), _tus_create(server, others, 4 * MiB)):
        assert refused.status_code == 507, (refused.status_code, refused.text)
        assert refused.json()["code"] == "INSUFFICIENT_STORAGE"

    assert _release_reservations(server, timedelta(hours=1)) == 0  # not idle long enough
    assert _release_reservations(server, timedelta(hours=7)) == 1  # past reservation_timeout (6h)
    assert os.statvfs(disk_32m).f_bavail * os.statvfs(disk_32m).f_frsize > 28 * MiB

    other = _drive_create(server, others, 1 * MiB)  # the space is free again
    assert other.status_code == 200, other.text
    cancelled = requests.delete(
        f"{server.url}/api/files/upload/task/{other.json()['taskId']}", headers=others
    )
    assert cancelled.status_code in (200, 204), cancelled.text

    patch = {**first_auth, "Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
    sent = requests.patch(
        f"{server.url}{location}", data=payload, headers={**patch, "Upload-Offset": "0"}, timeout=60
    )
    assert sent.status_code == 204, sent.text
    sha256 = hashlib.sha256(payload).hexdigest()
    blob = disk_32m / "blobs" / sha256[:2] / sha256[2:4] / sha256
    assert blob.stat().st_size == len(payload)
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha256
