"""Slot routes through the Flask test client: configuration-dependent behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.app import create_app
from hmacfs.db import DEFAULT_POOL_ID, Database
from hmacfs.models import Blob, File, Pool, UploadTask
from hmacfs.xep0363.signing import SignedRequest, signed_query
from tests.conftest import HMAC_SECRET, make_settings


def _client(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], **sections: dict[str, object]
) -> tuple[Flask, FlaskClient]:
    settings = make_settings(
        tmp_path / "storage", engine.url.render_as_string(hide_password=False), **sections
    )
    app = create_app(settings, db=Database(engine=engine, sessions=sessions))
    return app, app.test_client()


def _query(path: str, size: int, method: str = "PUT", base: str = "/upload/") -> str:
    request = SignedRequest(method, path, f"{base}{path}", size, "application/octet-stream")
    query = signed_query(HMAC_SECRET, "v", request)
    return "&".join(f"{k}={v}" for k, v in query.items())


@pytest.mark.parametrize(
    "case", [(None, timedelta(hours=2)), (600, timedelta(minutes=10))], ids=["file_ttl", "pool"]
)
def test_expiry_is_the_default_pools_lifetime_else_file_ttl(
    tmp_path: Path,
    engine: Engine,
    sessions: sessionmaker[Session],
    session: Session,
    case: tuple[int | None, timedelta],
) -> None:
    pool_ttl, lifetime = case
    session.execute(update(Pool).where(Pool.id == DEFAULT_POOL_ID).values(file_ttl_seconds=pool_ttl))
    session.flush()
    _app, client = _client(tmp_path, engine, sessions, xep0363={"file_ttl": "2h"})
    assert client.put(f"/upload/ttl/a.bin?{_query('ttl/a.bin', 3)}", data=b"abc").status_code == 201
    file = session.scalars(select(File).where(File.path == "ttl/a.bin")).one()
    assert file.expired_at is not None
    assert abs(file.expired_at - (datetime.now(UTC) + lifetime)) < timedelta(minutes=1)


def test_a_put_records_its_completed_upload_task_and_one_blob_reference(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], session: Session
) -> None:
    _app, client = _client(tmp_path, engine, sessions)
    for slot in ("ref/a.bin", "ref/b.bin"):
        assert client.put(f"/upload/{slot}?{_query(slot, 5)}", data=b"same!").status_code == 201
    files = session.scalars(select(File).where(File.path.in_(["ref/a.bin", "ref/b.bin"]))).all()
    assert len(files) == 2 and files[0].blob_id == files[1].blob_id
    blob = session.get(Blob, files[0].blob_id)
    assert blob is not None and blob.ref_count == 2 and blob.shared
    for file in files:
        task = session.scalars(select(UploadTask).where(UploadTask.file_id == file.id)).one()
        assert (task.protocol, task.status, task.file_name, task.file_size, task.hash) == (
            "xep0363",
            "Completed",
            file.name,
            5,
            file.sha256,
        )
        assert task.completed_at is not None and task.expired_at == file.expired_at


def test_without_deduplication_every_put_gets_its_own_blob(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], session: Session
) -> None:
    _app, client = _client(tmp_path, engine, sessions, deduplication={"enabled": False})
    for slot in ("own/a.bin", "own/b.bin"):
        assert client.put(f"/upload/{slot}?{_query(slot, 5)}", data=b"same!").status_code == 201
        assert client.get(f"/upload/{slot}").data == b"same!"
    files = session.scalars(select(File).where(File.path.in_(["own/a.bin", "own/b.bin"]))).all()
    blobs = [session.get(Blob, file.blob_id) for file in files]
    assert len({blob.id for blob in blobs if blob is not None}) == 2
    assert all(blob is not None and not blob.shared and blob.ref_count == 1 for blob in blobs)


def test_signature_required_for_get_when_configured(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    _app, client = _client(tmp_path, engine, sessions, xep0363={"require_signature_for_get": True})
    assert client.put(f"/upload/priv/a.bin?{_query('priv/a.bin', 3)}", data=b"abc").status_code == 201
    assert client.get("/upload/priv/a.bin").status_code == 403
    signed = client.get(f"/upload/priv/a.bin?{_query('priv/a.bin', 3, 'GET')}")
    assert signed.status_code == 200 and signed.data == b"abc"


def test_custom_base_path_and_full_signed_path(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    _app, client = _client(
        tmp_path, engine, sessions, xep0363={"base_path": "/files/", "signed_path": "full"}
    )
    request = SignedRequest("PUT", "s/a.bin", "/files/s/a.bin", 3, "application/octet-stream")
    query = signed_query(HMAC_SECRET, "v", request, signed_path="full")
    assert client.put(f"/files/s/a.bin?v={query['v']}", data=b"abc").status_code == 201
    other = SignedRequest("PUT", "t/a.bin", "/files/t/a.bin", 3, "application/octet-stream")
    relative = signed_query(HMAC_SECRET, "v", other)  # the relative form is refused here
    assert client.put(f"/files/t/a.bin?v={relative['v']}", data=b"abc").status_code == 403
    assert client.get("/files/s/a.bin").data == b"abc"


def test_chunked_api_routes_under_the_base_path_win(client: FlaskClient) -> None:
    """The chunked API's /upload/chunked and /upload/status are not slots."""
    put = client.put("/upload/chunked", data=b"x")
    assert put.status_code == 400 and put.get_json()["details"]["field"] == "X-Upload-Session-ID"
    status = client.get("/upload/status")
    assert status.status_code == 400 and status.get_json()["details"]["field"] == "X-Upload-Session-ID"
    # a one-segment path is no slot either: slots are <slot>/<filename>
    assert client.put("/upload/single", data=b"x").status_code == 400


@pytest.mark.parametrize("origin", ["https://a.example", "https://b.example"])
def test_cors_wildcard(tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], origin: str) -> None:
    _app, client = _client(tmp_path, engine, sessions, xep0363={"cors_allowed_origins": ["*"]})
    response = client.options("/upload/a/b.jpg", headers={"Origin": origin})
    assert response.status_code == 204 and response.headers["Access-Control-Allow-Origin"] == "*"


def test_x_accel_redirect_hands_the_body_to_nginx(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    _app, client = _client(
        tmp_path, engine, sessions, streaming={"x_accel_redirect": True, "x_accel_prefix": "/internal/"}
    )
    assert client.put(f"/upload/acc/a.txt?{_query('acc/a.txt', 3)}", data=b"abc").status_code == 201
    response = client.get("/upload/acc/a.txt")
    accel = response.headers["X-Accel-Redirect"]
    assert accel.startswith("/internal/blobs/") and response.data == b""
    assert (tmp_path / "storage" / accel.removeprefix("/internal/")).read_bytes() == b"abc"
    assert response.headers["ETag"].strip('"') in accel


def test_a_blob_outside_the_store_root_is_sent_by_hmacfs_not_nginx(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], session: Session
) -> None:
    """nginx's internal location maps the store's root only: a blob under a pool's
    storage path (or where a migration put it) would be a 404 there."""
    _app, client = _client(
        tmp_path, engine, sessions, streaming={"x_accel_redirect": True, "x_accel_prefix": "/internal/"}
    )
    assert client.put(f"/upload/root/a.txt?{_query('root/a.txt', 3)}", data=b"abc").status_code == 201
    blob = session.scalars(
        select(Blob).join(File, File.blob_id == Blob.id).where(File.path == "root/a.txt")
    ).one()
    elsewhere = tmp_path / "pool-storage"
    (elsewhere / blob.storage_key).parent.mkdir(parents=True)
    (tmp_path / "storage" / blob.storage_key).rename(elsewhere / blob.storage_key)
    session.execute(update(Blob).where(Blob.id == blob.id).values(storage_root=str(elsewhere)))
    session.flush()
    response = client.get("/upload/root/a.txt")
    assert "X-Accel-Redirect" not in response.headers and response.data == b"abc"
