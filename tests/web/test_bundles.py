"""The /api/bundles API through the Flask client, on both backends."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from hmacfs.models import File, UploadTask
from hmacfs.web.context import services
from tests.conftest import bearer
from tests.tasks.helpers import add_file


def _create(client: FlaskClient, auth: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post("/api/bundles", json=body, headers=auth)
    assert response.status_code == 201, response.json
    assert isinstance(response.json, dict)
    return response.json


def test_create_list_show_delete(client: FlaskClient, auth: dict[str, str], account: uuid.UUID) -> None:
    first = _create(client, auth, name="  Holiday  ", description="photos")
    assert (first["name"], first["description"], first["fileCount"]) == ("Holiday", "photos", 0)
    second = _create(client, auth, name="Work")
    listed = client.get("/api/bundles", headers=auth)
    assert listed.status_code == 200 and listed.headers["X-Total"] == "2"
    assert {b["id"] for b in listed.json} == {first["id"], second["id"]}
    with client.application.app_context():
        found = services()
        with found.db.sessions() as session:
            file = add_file(
                session, found, account, b"hello bundle", "h.txt", bundle_id=uuid.UUID(str(first["id"]))
            )
            session.commit()
    shown = client.get(f"/api/bundles/{first['id']}", headers=auth).json
    assert (shown["fileCount"], shown["totalSize"]) == (1, len(b"hello bundle"))
    assert [f["id"] for f in shown["files"]] == [str(file.id)] and shown["files"][0]["name"] == "h.txt"
    page = client.get("/api/bundles?limit=1&offset=0", headers=auth)
    assert len(page.json) == 1 and page.headers["X-Total"] == "2"

    assert client.delete(f"/api/bundles/{first['id']}", headers=auth).status_code == 204
    assert client.get(f"/api/bundles/{first['id']}", headers=auth).status_code == 404
    with client.application.app_context(), services().db.sessions() as session:
        kept = session.get(File, file.id)
        assert kept is not None and kept.bundle_id is None  # the file stays, out of the bundle
    assert client.get("/api/bundles", headers=auth).headers["X-Total"] == "1"


def test_delete_clears_uploads_headed_for_the_bundle(
    client: FlaskClient, auth: dict[str, str], account: uuid.UUID, session: Session
) -> None:
    bundle = _create(client, auth, name="incoming")
    response = client.post(
        "/api/files/upload/create",
        json={
            "fileName": "a.bin",
            "fileSize": 10,
            "hash": "ab" * 32,
            "contentType": "text/plain",
            "bundleId": bundle["id"],
        },
        headers=auth,
    )
    assert response.status_code == 200 and not response.json["fileExists"], response.json
    assert client.delete(f"/api/bundles/{bundle['id']}", headers=auth).status_code == 204
    upload = session.query(UploadTask).filter_by(task_id=response.json["taskId"]).one()
    assert upload.bundle_id is None


def test_bad_input_is_a_400_naming_the_field(client: FlaskClient, auth: dict[str, str]) -> None:
    for body, field in (
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": 5}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "ok", "description": ["no"]}, "description"),
    ):
        response = client.post("/api/bundles", json=body, headers=auth)
        assert response.status_code == 400, body
        assert response.json["code"] == "VALIDATION_FAILED" and response.json["details"]["field"] == field
    assert client.post("/api/bundles", data="nope", headers=auth).json["code"] == "INVALID_JSON"
    assert client.get("/api/bundles?limit=0", headers=auth).status_code == 400
    assert client.get("/api/bundles?limit=x", headers=auth).status_code == 400


def test_authentication_and_isolation(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get("/api/bundles").status_code == 401
    assert client.post("/api/bundles", json={"name": "x"}).status_code == 401
    bundle = _create(client, auth, name="mine")
    other = bearer(uuid.uuid4())
    assert client.get("/api/bundles", headers=other).json == []
    for method in (client.get, client.delete):
        response = method(f"/api/bundles/{bundle['id']}", headers=other)
        assert response.status_code == 404 and response.json["code"] == "BUNDLE_NOT_FOUND"
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        assert client.get(f"/api/bundles/{missing}", headers=auth).json["code"] == "BUNDLE_NOT_FOUND"
    assert client.get(f"/api/bundles/{bundle['id']}", headers=auth).status_code == 200
