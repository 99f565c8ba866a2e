"""The Drive upload-task API through the Flask client, on both backends."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hmacfs.models import AccountQuota, Pool, UploadTask
from hmacfs.models.status import UploadStatus
from hmacfs.sealing import Sealer
from tests.conftest import HMAC_SECRET, bearer

API = "/api/files/upload"
CHUNK = 256 * 1024


def create(client: FlaskClient, auth: dict[str, str], payload: bytes, **fields: Any) -> Any:
    body = {
        "fileName": "report.pdf",
        "fileSize": len(payload),
        "contentType": "application/pdf",
        "chunkSize": CHUNK,
        "hash": hashlib.sha256(payload).hexdigest(),
        **fields,
    }
    return client.post(f"{API}/create", json=body, headers=auth)


def send(
    client: FlaskClient, auth: dict[str, str], task: str, index: int, data: bytes, *, raw: bool = False
) -> Any:
    url = f"{API}/chunk/{task}/{index}"
    if raw:
        return client.post(url, data=data, headers={**auth, "Content-Type": "application/octet-stream"})
    return client.post(url, data={"chunk": (io.BytesIO(data), "blob")}, headers=auth)


def upload(client: FlaskClient, auth: dict[str, str], payload: bytes, **fields: Any) -> tuple[str, Any]:
    task = create(client, auth, payload, **fields).json["taskId"]
    for index in range(0, -(-len(payload) // CHUNK)):
        assert (
            send(client, auth, task, index, payload[index * CHUNK : (index + 1) * CHUNK]).status_code == 200
        )
    return task, client.post(f"{API}/complete/{task}", headers=auth)


def test_full_upload_multipart_and_raw(client: FlaskClient, auth: dict[str, str]) -> None:
    payload = os.urandom(CHUNK * 2 + 5)
    created = create(client, auth, payload)
    assert created.status_code == 200
    body = created.json
    assert body["fileExists"] is False and body["chunkSize"] == CHUNK and body["chunksCount"] == 3
    task = body["taskId"]
    assert send(client, auth, task, 0, payload[:CHUNK]).status_code == 200
    assert send(client, auth, task, 1, payload[CHUNK : 2 * CHUNK], raw=True).status_code == 200
    again = send(client, auth, task, 1, payload[CHUNK : 2 * CHUNK], raw=True)
    assert again.status_code == 409 and again.json["code"] == "CHUNK_EXISTS"
    incomplete = client.post(f"{API}/complete/{task}", headers=auth)
    assert incomplete.status_code == 409 and incomplete.json["code"] == "UPLOAD_INCOMPLETE"
    resume = client.get(f"{API}/resume/{task}", headers=auth).json
    assert resume["uploadedChunks"] == [0, 1] and resume["missingChunks"] == [2]
    assert send(client, auth, task, 2, payload[2 * CHUNK :]).json["progress"] == 100.0
    file = client.post(f"{API}/complete/{task}", headers=auth).json
    assert file["hash"] == hashlib.sha256(payload).hexdigest() and file["size"] == len(payload)
    assert file["url"] == f"/download/{file['id']}" and file["contentType"] == "application/pdf"
    assert set(file) == {
        "id",
        "name",
        "size",
        "contentType",
        "hash",
        "poolId",
        "bundleId",
        "createdAt",
        "expiredAt",
        "url",
    }
    assert client.post(f"{API}/complete/{task}", headers=auth).json == file


def test_gateway_prefix_serves_the_same_api(client: FlaskClient, auth: dict[str, str]) -> None:
    payload = os.urandom(100)
    task = create(client, auth, payload).json["taskId"]
    progress = client.get(f"/drive/files/upload/progress/{task}", headers=auth)
    assert (
        progress.status_code == 200 and progress.json["taskId"] == task and progress.json["progress"] == 0.0
    )


def test_dedup_only_for_own_or_public_files(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    payload = os.urandom(1000)
    _, done = upload(client, auth, payload)
    mine = create(client, auth, payload).json
    assert mine["fileExists"] is True and mine["file"]["id"] == done.json["id"] and "taskId" not in mine
    stranger = create(client, bearer(uuid.uuid4()), payload).json
    assert stranger["fileExists"] is False
    session.execute(update(Pool).values(public=True))
    assert create(client, bearer(uuid.uuid4()), payload).json["fileExists"] is True


def test_other_accounts_tasks_are_not_found(client: FlaskClient, auth: dict[str, str]) -> None:
    task = create(client, auth, os.urandom(10)).json["taskId"]
    other = bearer(uuid.uuid4())
    for method, path in [
        ("get", f"progress/{task}"), ("get", f"resume/{task}"), ("get", f"tasks/{task}/details"),
        ("post", f"complete/{task}"), ("delete", f"task/{task}"), ("post", f"chunk/{task}/0"),
    ]:  # fmt: skip
        response = getattr(client, method)(f"{API}/{path}", headers=other)
        assert response.status_code == 404 and response.json["code"] == "UPLOAD_NOT_FOUND", path
    assert client.get(f"{API}/tasks", headers=other).headers["X-Total"] == "0"
    assert client.get(f"{API}/tasks").status_code == 401


def test_validation_errors_name_the_field(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    malformed = client.post(
        f"{API}/create", data="{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json["details"]["field"] == "body"
    payload = os.urandom(10)
    cases = [
        ({"fileSize": "10"}, 400, "fileSize"),
        ({"fileSize": 0}, 400, "fileSize"),
        ({"hash": "abc"}, 400, "hash"),
        ({"fileName": None}, 400, "fileName"),
        ({"chunkSize": 10}, 400, "chunkSize"),
        ({"poolId": "x"}, 400, "poolId"),
        ({"poolId": str(uuid.uuid4())}, 404, "poolId"),
        ({"expiredAt": "tomorrow"}, 400, "expiredAt"),
        ({"expiredAt": "2001-01-01T00:00:00Z"}, 400, "expiredAt"),
        ({"fileSize": 11 * 1024**3}, 413, "fileSize"),
        ({"bundleId": str(uuid.uuid4())}, 404, "bundleId"),
    ]
    for fields, status, field in cases:
        response = create(client, auth, payload, **fields)
        assert response.status_code == status and response.json["details"]["field"] == field, fields
    session.execute(update(Pool).values(max_file_size=5, allowed_content_types=["image/*"]))
    assert create(client, auth, payload, contentType="image/png").status_code == 413
    assert create(client, auth, b"abc", contentType="text/plain").json["code"] == "CONTENT_TYPE_NOT_ALLOWED"
    assert create(client, auth, b"abc", contentType="image/png").status_code == 200


def test_quota_checked_at_create_and_complete(
    client: FlaskClient, auth: dict[str, str], account: uuid.UUID, session: Session
) -> None:
    session.add(AccountQuota(account_id=account, max_bytes=1500))
    session.flush()
    first = create(client, auth, os.urandom(1000)).json["taskId"]
    over = create(client, auth, os.urandom(600))
    assert over.status_code == 403 and over.json["code"] == "QUOTA_EXCEEDED"
    client.delete(f"{API}/task/{first}", headers=auth)
    payload = os.urandom(1000)
    task = create(client, auth, payload).json["taskId"]
    send(client, auth, task, 0, payload)
    session.execute(update(AccountQuota).values(max_bytes=999))
    late = client.post(f"{API}/complete/{task}", headers=auth)
    assert late.status_code == 403 and late.json["code"] == "QUOTA_EXCEEDED"


def test_hash_mismatch_leaves_the_task_open(client: FlaskClient, auth: dict[str, str]) -> None:
    payload = os.urandom(CHUNK + 100)
    task = create(client, auth, payload).json["taskId"]
    send(client, auth, task, 0, payload[:CHUNK])
    send(client, auth, task, 1, b"\0" * 100)
    mismatch = client.post(f"{API}/complete/{task}", headers=auth)
    assert mismatch.status_code == 422 and mismatch.json["code"] == "HASH_MISMATCH"
    assert client.get(f"{API}/progress/{task}", headers=auth).json["status"] == "InProgress"
    assert (
        send(client, auth, task, 1, payload[CHUNK:]).status_code == 200
    )  # different bytes replace the chunk
    assert (
        client.post(f"{API}/complete/{task}", headers=auth).json["hash"]
        == hashlib.sha256(payload).hexdigest()
    )


def test_lists_stats_details_and_cleanup(client: FlaskClient, auth: dict[str, str], session: Session) -> None:
    names = ["b.bin", "a.bin", "c.bin"]
    tasks = [
        create(client, auth, os.urandom(300 + i), fileName=name).json["taskId"]
        for i, name in enumerate(names)
    ]
    upload(client, auth, os.urandom(50), fileName="done.bin")
    listed = client.get(f"{API}/tasks?sortBy=filename&sortDescending=false&limit=2&offset=1", headers=auth)
    assert listed.headers["X-Total"] == "4" and [t["fileName"] for t in listed.json] == ["b.bin", "c.bin"]
    done = client.get(f"{API}/tasks?status=Completed", headers=auth)
    assert done.headers["X-Total"] == "1" and done.json[0]["status"] == "Completed"
    assert client.get(f"{API}/tasks?limit=101", headers=auth).status_code == 400
    assert client.get(f"{API}/tasks?sortBy=size", headers=auth).json["details"]["field"] == "sortBy"
    assert len(client.get(f"{API}/tasks/recent?limit=2", headers=auth).json) == 2
    details = client.get(f"{API}/tasks/{tasks[0]}/details", headers=auth).json
    assert (
        details["pool"]["name"] == "default" and details["uploadSpeed"] == 0.0 and details["bundle"] is None
    )
    session.execute(
        update(UploadTask).where(UploadTask.task_id == tasks[1]).values(status=UploadStatus.FAILED.value)
    )
    stats = client.get(f"{API}/stats", headers=auth).json
    assert (stats["totalTasks"], stats["completedTasks"], stats["failedTasks"], stats["inProgressTasks"]) == (
        4,
        1,
        1,
        2,
    )
    assert stats["totalUploadedBytes"] == 50 and len(stats["recentActivity"]) == 4
    assert client.delete(f"{API}/tasks/cleanup", headers=auth).json == {"removed": 1}
    assert client.delete(f"{API}/task/{tasks[0]}", headers=auth).status_code == 204
    cancelled = send(client, auth, tasks[0], 0, os.urandom(300))
    assert cancelled.status_code == 410 and cancelled.json["code"] == "UPLOAD_CANCELLED"


def test_encrypt_password_is_sealed(client: FlaskClient, auth: dict[str, str], session: Session) -> None:
    task_id = create(client, auth, os.urandom(10), encryptPassword="hunter2").json["taskId"]
    task = session.scalars(select(UploadTask).where(UploadTask.task_id == task_id)).one()
    assert task.encrypt_requested and task.encrypt_password_sealed is not None
    assert b"hunter2" not in task.encrypt_password_sealed
    assert Sealer(HMAC_SECRET).unseal(task.encrypt_password_sealed, context=str(task.id)) == "hunter2"


def test_expiry_from_pool_default(client: FlaskClient, auth: dict[str, str], session: Session) -> None:
    session.execute(update(Pool).values(file_ttl_seconds=3600))
    _, done = upload(client, auth, os.urandom(20))
    assert done.json["expiredAt"] is not None


def test_single_chunk_upload_still_checks_the_declared_hash(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    payload = os.urandom(1000)
    task = create(client, auth, payload, hash=hashlib.sha256(b"other").hexdigest()).json["taskId"]
    assert send(client, auth, task, 0, payload, raw=True).status_code == 200
    mismatch = client.post(f"{API}/complete/{task}", headers=auth)
    assert mismatch.status_code == 422 and mismatch.json["code"] == "HASH_MISMATCH"


def test_multipart_without_chunk_field_records_nothing(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    from hmacfs.models import UploadChunk

    task = create(client, auth, os.urandom(100)).json["taskId"]
    response = client.post(
        f"{API}/chunk/{task}/0", data={"other": (io.BytesIO(os.urandom(100)), "blob")}, headers=auth
    )
    assert response.status_code == 400 and response.json["code"] == "MISSING_FIELD"
    too_short = send(client, auth, task, 0, os.urandom(99))
    assert too_short.status_code == 400 and too_short.json["code"] == "INCOMPLETE_BODY"
    assert session.scalars(select(UploadChunk)).all() == []
