"""Pools with their own storage path, on the real server and a real worker: uploads land
under the pool's root and download from there, FileMove carries the bytes to another
pool's root, and cleanup collects orphans under a pool root."""

from __future__ import annotations

import hashlib
import io
import os
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.live import LiveServer
from tests.worker_process import WorkerProcess

API = "/api/files/upload"
CHUNK = 256 * 1024


def _pool(server: LiveServer, root: Path) -> str:
    created = server.cli("pool", "create", f"p-{uuid.uuid4().hex[:6]}", "--storage-path", str(root))
    return created.stdout.strip()


def _drive_upload(server: LiveServer, auth: dict[str, str], pool: str, data: bytes) -> dict[str, Any]:
    body = {"fileName": "a.bin", "fileSize": len(data), "chunkSize": CHUNK, "poolId": pool,
            "contentType": "application/octet-stream",
            "hash": hashlib.sha256(data).hexdigest()}  # fmt: skip
    created = requests.post(f"{server.url}{API}/create", json=body, headers=auth, timeout=10)
    assert created.status_code == 200, created.text
    task = created.json()["taskId"]
    for index in range(0, len(data), CHUNK):
        files = {"chunk": ("blob", io.BytesIO(data[index : index + CHUNK]), "application/octet-stream")}
        sent = requests.post(
            f"{server.url}{API}/chunk/{task}/{index // CHUNK}", files=files, headers=auth, timeout=30
        )
        assert sent.status_code == 200, sent.text
    done = requests.post(f"{server.url}{API}/complete/{task}", headers=auth, timeout=30)
    assert done.status_code == 200, done.text
    file: dict[str, Any] = done.json()
    return file


def _blob_path(root: Path, data: bytes) -> Path:
    sha256 = hashlib.sha256(data).hexdigest()
    return root / "blobs" / sha256[:2] / sha256[2:4] / sha256


def _run_task(server: LiveServer, auth: dict[str, str], type: str, **parameters: Any) -> dict[str, Any]:
    answer = requests.post(
        f"{server.url}/api/tasks", json={"type": type, "parameters": parameters}, headers=auth, timeout=10
    )
    assert answer.status_code == 201, answer.text
    task_id = answer.json()["taskId"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        task: dict[str, Any] = requests.get(
            f"{server.url}/api/tasks/{task_id}", headers=auth, timeout=10
        ).json()
        if task["status"] in {"Completed", "Failed", "Cancelled"}:
            return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish")


def test_pool_roots_upload_move_download_and_cleanup(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(tasks={"migration_grace": "0s"})
    first_root, second_root = tmp_path / "first", tmp_path / "second"
    first, second = _pool(server, first_root), _pool(server, second_root)
    refused = server.cli("pool", "create", "relative", "--storage-path", "not/absolute", check=False)
    assert refused.returncode != 0 and "absolute" in refused.stderr

    auth = bearer(uuid.uuid4())
    data = os.urandom(CHUNK * 2 + 7)
    file = _drive_upload(server, auth, first, data)
    stored = _blob_path(first_root, data)
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert not _blob_path(server.workdir / "storage", data).exists()
    assert list((first_root / "parts").iterdir()) == []
    download = f"{server.url}/download/{file['id']}"
    assert requests.get(download, headers=auth, timeout=30).content == data

    worker = WorkerProcess(server.config_path).start()
    try:
        moved = _run_task(server, auth, "FileMove", fileIds=[file["id"]], targetPoolId=second)
        assert moved["status"] == "Completed", moved
        assert _blob_path(second_root, data).read_bytes() == data
        assert not stored.exists()
        assert requests.get(download, headers=auth, timeout=30).content == data

        deleted = _run_task(server, auth, "BulkOperation", operationType="delete", targetIds=[file["id"]])
        assert deleted["status"] == "Completed", deleted
    finally:
        worker.stop()
    assert _blob_path(second_root, data).exists()  # unreferenced now; the collector removes it
    server.cli("cleanup")
    assert not _blob_path(second_root, data).exists()
    assert requests.get(download, headers=auth, timeout=30).status_code == 404
