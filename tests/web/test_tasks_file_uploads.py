"""Uploads in /api/tasks as the seed's FileUpload type: listed, shown, counted; read-only."""

from __future__ import annotations

import os
import uuid
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import bearer
from tests.web.test_drive import CHUNK, create, send


def _task(client: FlaskClient, auth: dict[str, str], name: str) -> Any:
    body = {"type": "Custom", "parameters": {"handler": "api-test"}, "name": name}
    response = client.post("/api/tasks", json=body, headers=auth)
    assert response.status_code == 201, response.json
    return response.json


def _upload(client: FlaskClient, auth: dict[str, str], payload: bytes, name: str) -> str:
    response = create(client, auth, payload, fileName=name)
    assert response.status_code == 200 and not response.json["fileExists"], response.json
    task_id: str = response.json["taskId"]
    return task_id


def test_uploads_are_listed_among_tasks(client: FlaskClient, auth: dict[str, str]) -> None:
    payload = os.urandom(CHUNK * 2)
    upload_id = _upload(client, auth, payload, "b-upload.bin")
    assert send(client, auth, upload_id, 0, payload[:CHUNK]).status_code == 200
    task = _task(client, auth, "a-task")
    listed = client.get("/api/tasks", headers=auth)
    assert listed.headers["X-Total"] == "2"
    by_id = {item["taskId"]: item for item in listed.json}
    upload = by_id[upload_id]
    assert (upload["type"], upload["name"], upload["status"], upload["readOnly"]) == (
        "FileUpload", "b-upload.bin", "InProgress", True
    )  # fmt: skip
    assert upload["progress"] == 50.0 and upload["results"]["bytesUploaded"] == CHUNK
    assert upload["parameters"]["fileSize"] == len(payload) and upload["parameters"]["protocol"] == "drive"
    assert set(upload) == set(by_id[task["taskId"]]) | {"readOnly"}  # the same shape as a task

    only = client.get("/api/tasks?type=FileUpload", headers=auth)
    assert [item["taskId"] for item in only.json] == [upload_id] and only.headers["X-Total"] == "1"
    assert [item["taskId"] for item in client.get("/api/tasks?type=Custom", headers=auth).json] == [
        task["taskId"]
    ]
    by_name = client.get("/api/tasks?sortBy=name&sortDescending=false", headers=auth).json
    assert [item["name"] for item in by_name] == ["a-task", "b-upload.bin"]
    by_progress = client.get("/api/tasks?sortBy=progress", headers=auth).json
    assert [item["taskId"] for item in by_progress] == [upload_id, task["taskId"]]
    second = client.get("/api/tasks?sortBy=name&sortDescending=false&limit=1&offset=1", headers=auth)
    assert [item["name"] for item in second.json] == ["b-upload.bin"] and second.headers["X-Total"] == "2"
    pending = client.get("/api/tasks?status=Pending", headers=auth).json
    assert [item["taskId"] for item in pending] == [task["taskId"]]

    stats = client.get("/api/tasks/stats", headers=auth).json
    assert stats["total"] == 2 and stats["byType"] == {"Custom": 1, "FileUpload": 1}
    assert stats["byStatus"]["InProgress"] == 1 and stats["byStatus"]["Pending"] == 1


def test_an_upload_is_shown_with_details(client: FlaskClient, auth: dict[str, str]) -> None:
    payload = os.urandom(CHUNK * 4)
    upload_id = _upload(client, auth, payload, "d.bin")
    assert send(client, auth, upload_id, 1, payload[CHUNK : 2 * CHUNK]).status_code == 200
    shown = client.get(f"/api/tasks/{upload_id}", headers=auth)
    assert shown.status_code == 200 and shown.json["type"] == "FileUpload" and shown.json["progress"] == 25.0
    details = client.get(f"/api/tasks/{upload_id}/details", headers=auth).json
    assert (details["processed"], details["total"], details["hasSecret"]) == (CHUNK, len(payload), False)
    assert {"speed", "etaSeconds", "elapsedSeconds"} <= set(details)


def test_acting_on_an_upload_through_tasks_is_refused(client: FlaskClient, auth: dict[str, str]) -> None:
    upload_id = _upload(client, auth, os.urandom(CHUNK), "r.bin")
    for action in ("pause", "resume", "cancel"):
        response = client.post(f"/api/tasks/{upload_id}/{action}", headers=auth)
        assert response.status_code == 409 and response.json["code"] == "FILE_UPLOAD_READ_ONLY"
        assert response.json["details"] == {
            "action": action, "type": "FileUpload", "protocol": "drive", "status": "Pending"
        }  # fmt: skip
    assert client.get(f"/api/tasks/{upload_id}", headers=auth).json["status"] == "Pending"
    assert client.delete("/api/tasks/cleanup", headers=auth).json == {"deleted": 0}
    assert client.get(f"/api/tasks/{upload_id}", headers=auth).status_code == 200


def test_another_accounts_upload_is_not_found(client: FlaskClient, auth: dict[str, str]) -> None:
    upload_id = _upload(client, auth, os.urandom(CHUNK), "mine.bin")
    other = bearer(uuid.uuid4())
    assert client.get("/api/tasks", headers=other).json == []
    for path in (f"/api/tasks/{upload_id}", f"/api/tasks/{upload_id}/details"):
        response = client.get(path, headers=other)
        assert response.status_code == 404 and response.json["code"] == "TASK_NOT_FOUND"
    response = client.post(f"/api/tasks/{upload_id}/cancel", headers=other)
    assert response.status_code == 404 and response.json["code"] == "TASK_NOT_FOUND"
