"""Quotas on every upload path, through the Flask test client, on both databases
(docs/quotas.md): the account's quota on a multipart POST with a JWT, the daily quota of
a file-share token's uploader, the server's global quota, the reservation bound, and a
slot's expiry from the token."""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.app import create_app
from hmacfs.db import DEFAULT_POOL_ID, Database
from hmacfs.models import File, Pool, UploadTask
from tests.conftest import HMAC_SECRET, bearer, make_settings
from tests.web.test_xep0363 import _query

DRIVE = "/api/files/upload"


def _client(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], **sections: dict[str, object]
) -> FlaskClient:
    storage = sections.pop("storage", {})  # make_settings takes the storage path by that name
    url = engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path / "storage", url, **sections)
    settings = settings.model_copy(update={"storage": settings.storage.model_copy(update=storage)})
    return create_app(settings, db=Database(engine=engine, sessions=sessions)).test_client()


def _multipart(client: FlaskClient, headers: dict[str, str], body: bytes) -> Any:
    data = {"file": (io.BytesIO(body), "a.bin")}
    return client.post("/upload", headers=headers, data=data, content_type="multipart/form-data")


def _share_token(slot: str, size: int, **claims: object) -> dict[str, str]:
    """A Prosody mod_http_file_share token for PUT /upload/<slot>."""
    slot_id, _, name = slot.partition("/")
    payload = {"slot": slot_id, "filename": name, "filesize": size, "exp": int(time.time()) + 300, **claims}
    return {"Authorization": f"Bearer {jwt.encode(payload, HMAC_SECRET, algorithm='HS256')}"}


def _drive_create(client: FlaskClient, auth: dict[str, str], size: int) -> Any:
    body = {
        "fileName": "a.bin",
        "fileSize": size,
        "contentType": "application/octet-stream",
        "hash": "0" * 64,
    }
    return client.post(f"{DRIVE}/create", json=body, headers=auth)


def _parts(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "storage" / "parts").glob("*.part"))


def test_a_multipart_post_with_a_jwt_is_counted(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], session: Session
) -> None:
    client = _client(tmp_path, engine, sessions, uploads={"default_quota": 1000})
    account = uuid.uuid4()
    assert _multipart(client, bearer(account), b"a" * 600).status_code == 201
    over = _multipart(client, bearer(account), b"b" * 600)
    assert over.status_code == 403 and over.json["code"] == "QUOTA_EXCEEDED", over.json
    assert over.json["details"]["used"] == 600
    assert _parts(tmp_path) == []  # the refused body's part is gone
    names = session.scalars(select(File.size).where(File.account_id == account)).all()
    assert names == [600]
    assert _multipart(client, bearer(uuid.uuid4()), b"c" * 600).status_code == 201  # another account


def test_the_daily_quota_charges_the_tokens_uploader(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], session: Session
) -> None:
    client = _client(tmp_path, engine, sessions, xep0363={"daily_quota": 1000})
    alice = {"sub": "alice@example.org"}
    assert (
        client.put(
            "/upload/d1/a.bin", data=b"a" * 600, headers=_share_token("d1/a.bin", 600, **alice)
        ).status_code
        == 201
    )
    over = client.put("/upload/d2/b.bin", data=b"b" * 600, headers=_share_token("d2/b.bin", 600, **alice))
    assert over.status_code == 403 and over.json["code"] == "QUOTA_EXCEEDED"
    assert over.json["details"]["scope"] == "daily" and over.json["details"]["used"] == 600
    bob = _share_token("d3/c.bin", 600, sub="bob@example.org")
    assert client.put("/upload/d3/c.bin", data=b"c" * 600, headers=bob).status_code == 201
    # A v/v2/v3 slot names no uploader: not counted.
    assert client.put(f"/upload/d4/d.bin?{_query('d4/d.bin', 600)}", data=b"d" * 600).status_code == 201
    uploaders = dict(session.execute(select(UploadTask.file_name, UploadTask.uploader).where(
        UploadTask.file_name.in_(["a.bin", "c.bin", "d.bin"]), UploadTask.protocol == "xep0363"
    )).all())  # fmt: skip
    assert uploaders == {"a.bin": "alice@example.org", "c.bin": "bob@example.org", "d.bin": None}
    # A day later alice may upload again.
    session.execute(update(UploadTask).where(UploadTask.uploader == "alice@example.org").values(
        created_at=datetime.now(UTC) - timedelta(hours=25)
    ))  # fmt: skip
    again = client.put("/upload/d5/e.bin", data=b"e" * 600, headers=_share_token("d5/e.bin", 600, **alice))
    assert again.status_code == 201


def test_the_daily_quota_counts_a_bearer_accounts_creates(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    client = _client(tmp_path, engine, sessions, xep0363={"daily_quota": 1000})
    auth = bearer(uuid.uuid4())
    assert _drive_create(client, auth, 600).status_code == 200
    over = _drive_create(client, auth, 600)
    assert over.status_code == 403 and over.json["details"]["scope"] == "daily"


def test_the_global_quota_is_507(tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]) -> None:
    client = _client(tmp_path, engine, sessions, storage={"global_quota": 100_000})
    stored = client.put(f"/upload/g1/a.bin?{_query('g1/a.bin', 60_000)}", data=b"a" * 60_000)
    assert stored.status_code == 201
    refused = client.put(f"/upload/g2/b.bin?{_query('g2/b.bin', 60_000)}", data=b"b" * 60_000)
    assert refused.status_code == 507 and refused.json["code"] == "STORAGE_QUOTA_EXCEEDED"
    assert refused.headers["Retry-After"]
    reserved = _drive_create(client, bearer(uuid.uuid4()), 60_000)
    assert reserved.status_code == 507 and reserved.json["code"] == "STORAGE_QUOTA_EXCEEDED"
    assert _drive_create(client, bearer(uuid.uuid4()), 30_000).status_code == 200
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'hmacfs_quota_refusals_total{code="STORAGE_QUOTA_EXCEEDED"} 2.0' in metrics
    assert _parts(tmp_path) != [] and len(_parts(tmp_path)) == 1


def test_reservations_are_bounded_per_account(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    client = _client(tmp_path, engine, sessions, uploads={"max_reserved": 1000})
    auth = bearer(uuid.uuid4())
    first = _drive_create(client, auth, 700)
    assert first.status_code == 200
    refused = _drive_create(client, auth, 400)
    assert refused.status_code == 403 and refused.json["code"] == "RESERVATION_LIMIT"
    assert _drive_create(client, bearer(uuid.uuid4()), 400).status_code == 200  # another account
    client.delete(f"{DRIVE}/task/{first.json['taskId']}", headers=auth)
    assert _drive_create(client, auth, 400).status_code == 200  # the cancelled one reserves nothing


@pytest.mark.parametrize(
    ("pool_ttl", "file_ttl", "expected"),
    [
        (None, "2h", timedelta(minutes=10)),
        (None, "5m", timedelta(minutes=5)),
        (60, "0s", timedelta(minutes=1)),
    ],
    ids=["token", "file_ttl", "pool"],
)
def test_a_slot_expires_when_the_token_says_unless_a_ttl_is_earlier(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], session: Session,
    *, pool_ttl: int | None, file_ttl: str, expected: timedelta,
) -> None:  # fmt: skip
    session.execute(update(Pool).where(Pool.id == DEFAULT_POOL_ID).values(file_ttl_seconds=pool_ttl))
    session.flush()
    client = _client(tmp_path, engine, sessions, xep0363={"file_ttl": file_ttl})
    token = _share_token("e1/a.bin", 3, sub="carol@example.org", expires=int(time.time()) + 600)
    assert client.put("/upload/e1/a.bin", data=b"abc", headers=token).status_code == 201
    file = session.scalars(select(File).where(File.path == "e1/a.bin")).one()
    assert file.expired_at is not None
    assert abs(file.expired_at - (datetime.now(UTC) + expected)) < timedelta(seconds=30)


def test_a_malformed_expires_claim_is_refused(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    client = _client(tmp_path, engine, sessions)
    for bad in ("soon", 10**20, True):
        token = _share_token("e2/a.bin", 3, expires=bad)
        refused = client.put("/upload/e2/a.bin", data=b"abc", headers=token)
        assert refused.status_code == 403 and refused.json["code"] == "INVALID_CLAIM"
