"""A Drive upload created with encryptPassword is encrypted by a worker, and its
download then needs the password (decrypted on the fly) — across the upload,
task and download code, on the real server and a real worker process."""

from __future__ import annotations

import hashlib
import time
import uuid

import requests
import sqlalchemy as sa

from hmacfs.db import make_engine
from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.worker_process import WorkerProcess

PASSWORD = "correct horse battery staple"


def _upload(url: str, headers: dict[str, str], data: bytes) -> str:
    created = requests.post(
        f"{url}/api/files/upload/create",
        json={
            "fileName": "diary.txt", "fileSize": len(data), "contentType": "text/plain",
            "hash": hashlib.sha256(data).hexdigest(), "encryptPassword": PASSWORD,
        },
        headers=headers, timeout=10,
    )  # fmt: skip
    assert created.status_code == 200, created.text
    task_id = created.json()["taskId"]
    chunk = requests.post(
        f"{url}/api/files/upload/chunk/{task_id}/0", data=data,
        headers={**headers, "Content-Type": "application/octet-stream"}, timeout=10,
    )  # fmt: skip
    assert chunk.status_code == 200, chunk.text
    done = requests.post(f"{url}/api/files/upload/complete/{task_id}", headers=headers, timeout=30)
    assert done.status_code == 200, done.text
    file_id: str = done.json()["id"]
    return file_id


def _wait_encrypted(url: str, headers: dict[str, str], timeout: float = 90) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = requests.get(f"{url}/api/tasks?type=FileEncrypt", headers=headers, timeout=10).json()
        items = found if isinstance(found, list) else found.get("items", [])
        if items and items[0]["status"] in ("Completed", "Failed"):
            return dict(items[0])
        time.sleep(0.2)
    raise AssertionError("FileEncrypt never finished")


def test_encrypt_password_upload_then_password_download(start_server: StartServer) -> None:
    server = start_server()
    account = uuid.uuid4()
    headers = bearer(account)
    data = b"dear diary, " * 50_000
    file_id = _upload(server.url, headers, data)
    worker = WorkerProcess(server.config_path).start()
    try:
        task = _wait_encrypted(server.url, headers)
    finally:
        worker.stop()
    assert task["status"] == "Completed", task

    download = f"{server.url}/download/{file_id}"
    missing = requests.get(download, headers=headers, timeout=10)
    assert missing.status_code == 403 and missing.json()["code"] == "PASSWORD_REQUIRED"
    wrong = requests.get(download, headers={**headers, "X-File-Password": "nope"}, timeout=30)
    assert wrong.status_code == 403 and wrong.json()["code"] == "WRONG_PASSWORD"
    right = requests.get(download, headers={**headers, "X-File-Password": PASSWORD}, timeout=30)
    assert right.status_code == 200 and right.content == data
    assert int(right.headers["Content-Length"]) == len(data)
    # Another account still cannot even see it.
    assert requests.get(download, headers=bearer(uuid.uuid4()), timeout=10).status_code == 404

    engine = make_engine(server.database_url)
    with engine.connect() as connection:
        sealed = (
            connection.execute(sa.text("SELECT encrypt_password_sealed FROM upload_tasks")).scalars().all()
        )
        secrets = connection.execute(sa.text("SELECT sealed_secret FROM tasks")).scalars().all()
        params = connection.execute(sa.text("SELECT CAST(parameters AS TEXT) FROM tasks")).scalars().all()
    engine.dispose()
    assert sealed == [None] and secrets == [None]  # erased once used
    assert all(PASSWORD not in text for text in params)
