"""GET /api/pools through the Flask client, on both backends."""

from __future__ import annotations

import uuid

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.models import Pool


def test_signed_in_callers_see_every_pool_without_its_storage_path(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    photos = Pool(id=uuid.uuid4(), name="photos", max_file_size=10**12, allowed_content_types=["image/*"],
                  file_ttl_seconds=3600, public=True, allow_anonymous=True,
                  storage_path="/secret/place")  # fmt: skip
    session.add(photos)
    session.flush()
    listed = client.get("/api/pools", headers=auth)
    assert listed.status_code == 200
    pools = {pool["name"]: pool for pool in listed.json}
    assert pools["photos"] == {
        "id": str(photos.id), "name": "photos", "default": False,
        "maxFileSize": client.application.extensions["hmacfs"].settings.uploads.max_upload_size,
        "allowedContentTypes": ["image/*"], "fileTtlSeconds": 3600, "public": True, "allowAnonymous": True,
    }  # fmt: skip
    default = next(pool for pool in listed.json if pool["default"])
    assert default["id"] == str(DEFAULT_POOL_ID) and default["allowedContentTypes"] is None
    assert "/secret/place" not in listed.get_data(as_text=True)


def test_anonymous_callers_get_401(client: FlaskClient) -> None:
    answer = client.get("/api/pools")
    assert answer.status_code == 401 and answer.json["code"]
