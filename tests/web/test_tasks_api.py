"""The /api/tasks API through the Flask client, on both backends."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from hmacfs.web.context import services
from tests.conftest import bearer
from tests.tasks.helpers import add_file


def _create(client: FlaskClient, auth: dict[str, str], **body: Any) -> Any:
    body.setdefault("type", "Custom")
    body.setdefault("parameters", {"handler": "api-test"})
    response = client.post("/api/tasks", json=body, headers=auth)
    assert response.status_code == 201, response.json
    return response.json


def test_create_show_and_details(client: FlaskClient, auth: dict[str, str]) -> None:
    task = _create(client, auth, name="Mine", description="d", priority=7)
    assert task["status"] == "Pending" and task["name"] == "Mine" and task["priority"] == 7
    shown = client.get(f"/api/tasks/{task['taskId']}", headers=auth).json
    assert shown == task
    details = client.get(f"/api/tasks/{task['taskId']}/details", headers=auth).json
    assert {"progress", "speed", "etaSeconds", "attempts", "createdAt", "startedAt", "completedAt"} <= set(
        details
    )


def test_authentication_is_required(client: FlaskClient) -> None:
    assert client.get("/api/tasks").status_code == 401
    assert client.post("/api/tasks", json={}).status_code == 401


def test_validation_names_the_field(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post("/api/tasks", json={"type": "FileMove", "parameters": {}}, headers=auth)
    assert response.status_code == 400
    assert response.json["details"]["field"] == "parameters.fileIds"
    response = client.post(
        "/api/tasks",
        json={"type": "Custom", "parameters": {"handler": "api-test"}, "priority": 101},
        headers=auth,
    )
    assert response.status_code == 400 and response.json["details"]["field"] == "priority"
    assert client.post("/api/tasks", data="nope", headers=auth).status_code == 400
    assert client.get("/api/tasks", headers=auth).headers["X-Total"] == "0"


def test_others_tasks_are_404(client: FlaskClient, auth: dict[str, str]) -> None:
    task = _create(client, auth)
    other = bearer(uuid.uuid4())
    for path in ("", "/details"):
        response = client.get(f"/api/tasks/{task['taskId']}{path}", headers=other)
        assert response.status_code == 404 and response.json["code"] == "TASK_NOT_FOUND"
    for action in ("pause", "resume", "cancel"):
        assert client.post(f"/api/tasks/{task['taskId']}/{action}", headers=other).status_code == 404
    assert client.get("/api/tasks", headers=other).headers["X-Total"] == "0"
    assert client.get(f"/api/tasks/{task['taskId']}", headers=auth).json["status"] == "Pending"


def test_list_filters_sorting_paging(client: FlaskClient, auth: dict[str, str]) -> None:
    made = [_create(client, auth, name=f"t{i}", priority=i) for i in range(5)]
    client.post(f"/api/tasks/{made[0]['taskId']}/cancel", headers=auth)
    page = client.get("/api/tasks?sortBy=priority&sortDescending=false&offset=1&limit=2", headers=auth)
    assert page.headers["X-Total"] == "5"
    assert [t["name"] for t in page.json] == ["t1", "t2"]
    pending = client.get("/api/tasks?status=Pending&type=Custom", headers=auth)
    assert pending.headers["X-Total"] == "4"
    for bad in ("limit=101", "limit=0", "sortBy=secret", "status=Bogus", "offset=x"):
        assert client.get(f"/api/tasks?{bad}", headers=auth).status_code == 400, bad


def test_transitions_and_conflicts(client: FlaskClient, auth: dict[str, str]) -> None:
    task_id = _create(client, auth)["taskId"]
    assert client.post(f"/api/tasks/{task_id}/pause", headers=auth).json["status"] == "Paused"
    assert client.post(f"/api/tasks/{task_id}/resume", headers=auth).json["status"] == "Pending"
    assert client.post(f"/api/tasks/{task_id}/cancel", headers=auth).json["status"] == "Cancelled"
    response = client.post(f"/api/tasks/{task_id}/resume", headers=auth)
    assert response.status_code == 409 and response.json["code"] == "TASK_INVALID_TRANSITION"
    assert client.post(f"/api/tasks/{task_id}/explode", headers=auth).status_code == 404


def test_stats_and_cleanup(client: FlaskClient, auth: dict[str, str]) -> None:
    first, _second = _create(client, auth), _create(client, auth)
    client.post(f"/api/tasks/{first['taskId']}/cancel", headers=auth)
    stats = client.get("/api/tasks/stats", headers=auth).json
    assert stats["total"] == 2 and stats["byStatus"]["Cancelled"] == 1 and stats["byType"] == {"Custom": 2}
    assert client.delete("/api/tasks/cleanup", headers=auth).json == {"deleted": 1}
    assert client.get("/api/tasks", headers=auth).headers["X-Total"] == "1"


def test_password_never_echoed(
    app: Flask, client: FlaskClient, auth: dict[str, str], account: uuid.UUID
) -> None:
    with app.app_context():
        from sqlalchemy.orm import Session

        session: Session = services().db.sessions()
        file = add_file(session, services(), account, b"plain")
        session.commit()
    task = _create(
        client, auth, type="FileEncrypt", parameters={"fileId": str(file.id), "password": "s3cret"}
    )
    assert "s3cret" not in str(task)
    details = client.get(f"/api/tasks/{task['taskId']}/details", headers=auth).json
    assert details["hasSecret"] is True and "s3cret" not in str(details)
