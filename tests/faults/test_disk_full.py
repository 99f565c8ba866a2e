"""A full disk: 507 with a stable code on every write path, nothing half-written, and the
same upload resumes once space is freed.

The server's storage is a 16 MiB tmpfs mounted by the test (the suite runs as root),
filled until 64 KiB are left.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.faults.conftest import tmpfs
from tests.faults.requests_of import drive_create
from tests.live import LiveServer
from tests.web.test_xep0363 import _query

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024
LEFT = 64 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small-disk", "16m") as mount:
        yield mount


def _fill(disk: Path, leave: int) -> Path:
    """Take all the free space of ``disk`` but ``leave`` bytes, in one reserved file."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, stat.f_bavail * stat.f_frsize - leave)
    finally:
        os.close(fd)
    return filler


def _parts(disk: Path) -> list[str]:
    return sorted(p.name for p in (disk / "parts").glob("*.part")) if (disk / "parts").exists() else []


def _refused(response: requests.Response) -> None:
    assert response.status_code == 507, (response.status_code, response.text)
    assert response.json()["code"] == "INSUFFICIENT_STORAGE" and response.headers.get("Retry-After")


def test_a_full_disk_is_507_everywhere_and_uploads_resume_once_space_is_freed(
    start_server: StartServer, small_disk: Path
) -> None:
    server: LiveServer = start_server(workers=1, storage={"path": str(small_disk), "min_free_space": "4MB"})
    auth = bearer(uuid.uuid4())
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    payload = os.urandom(2 * MiB)
    # A tus upload of unknown length (nothing reserved) that got 32 KiB in before the disk filled.
    created = requests.post(f"{server.url}/files/", headers={**tus, "Upload-Defer-Length": "1"}, timeout=10)
    assert created.status_code == 201
    upload = created.headers["Location"]
    upload = upload if upload.startswith("http") else f"{server.url}{upload}"
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    first = requests.patch(
        upload, data=payload[: 32 * 1024], headers={**patch, "Upload-Offset": "0"}, timeout=10
    )
    assert first.status_code == 204 and first.headers["Upload-Offset"] == str(32 * 1024)
    filler = _fill(small_disk, LEFT)
    parts_before = _parts(small_disk)

    health = requests.get(f"{server.url}/health/uploads", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "degraded", health.json()
    assert "storage" in health.json()["degraded"]

    slot = f"full/{uuid.uuid4().hex}.bin"
    _refused(requests.put(f"{server.url}/upload/{slot}?{_query(slot, MiB)}", data=payload[:MiB], timeout=10))
    # A create whose declared size cannot be reserved is refused before any byte is sent.
    _refused(
        requests.post(
            f"{server.url}/api/files/upload/create", json=drive_create(payload), headers=auth, timeout=10
        )
    )
    _refused(
        requests.patch(
            upload, data=payload[32 * 1024 :], headers={**patch, "Upload-Offset": str(32 * 1024)}, timeout=10
        )
    )
    assert _parts(small_disk) == parts_before  # nothing half-written left behind
    offset = requests.head(upload, headers=tus, timeout=10).headers["Upload-Offset"]
    assert offset == str(32 * 1024)  # the acknowledged offset, not what the failed PATCH wrote

    filler.unlink()  # space is freed: the same uploads go on, no restart
    rest = requests.patch(
        upload, data=payload[32 * 1024 :], timeout=30,
        headers={**patch, "Upload-Offset": str(32 * 1024), "Upload-Length": str(len(payload))},
    )  # fmt: skip
    assert rest.status_code == 204, rest.text
    sha256 = hashlib.sha256(payload).hexdigest()
    blob = small_disk / "blobs" / sha256[:2] / sha256[2:4] / sha256
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha256

    other = os.urandom(MiB)
    drive = requests.post(
        f"{server.url}/api/files/upload/create", json=drive_create(other), headers=auth, timeout=10
    )
    assert drive.status_code == 200, drive.text
    task = drive.json()["taskId"]
    raw = {**auth, "Content-Type": "application/octet-stream"}
    for index in range(drive.json()["chunksCount"]):
        chunk = other[index * drive.json()["chunkSize"] : (index + 1) * drive.json()["chunkSize"]]
        sent = requests.post(
            f"{server.url}/api/files/upload/chunk/{task}/{index}", data=chunk, headers=raw, timeout=10
        )
        assert sent.status_code == 200, sent.text
    done = requests.post(f"{server.url}/api/files/upload/complete/{task}", headers=auth, timeout=10)
    assert done.status_code == 200 and done.json()["hash"] == hashlib.sha256(other).hexdigest()
    assert requests.get(f"{server.url}/health/uploads", timeout=10).json()["status"] == "ok"
