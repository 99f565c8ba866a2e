"""The whole app over the in-memory BlobStore: every byte of an upload and a download goes
through the port (no file under the storage path), and a store that went down is a 503
that the client may retry."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.app import create_app
from hmacfs.db import Database
from hmacfs.models import File
from hmacfs.storage.memory import MemoryBlobStore
from hmacfs.xep0363.signing import SignedRequest, signed_query
from tests.conftest import HMAC_SECRET, make_settings
from tests.web.test_tus import TUS, create, patch, path_of


def _client(
    tmp_path: Path,
    engine: Engine,
    sessions: sessionmaker[Session],
    store: MemoryBlobStore,
    **sections: object,
) -> FlaskClient:
    url = engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path / "storage", url, **sections)  # type: ignore[arg-type]
    return create_app(settings, db=Database(engine=engine, sessions=sessions), store=store).test_client()


def _put_query(path: str, size: int) -> str:
    request = SignedRequest("PUT", path, f"/upload/{path}", size, "application/octet-stream")
    return "&".join(f"{k}={v}" for k, v in signed_query(HMAC_SECRET, "v", request).items())


def test_tus_upload_and_ranged_downloads_through_the_port(
    tmp_path: Path,
    engine: Engine,
    sessions: sessionmaker[Session],
    session: Session,
    auth: dict[str, str],
) -> None:
    store = MemoryBlobStore()
    client = _client(tmp_path, engine, sessions, store)
    payload = os.urandom(300_000)
    url = path_of(create(client, auth, len(payload)))
    assert patch(client, auth, url, 0, payload[:100_000]).status_code == 204
    assert patch(client, auth, url, 100_000, payload[100_000:]).status_code == 204
    file = session.scalars(select(File).where(File.name == "song.ogg")).one()
    assert file.sha256 == hashlib.sha256(payload).hexdigest()
    assert [b.size for b in store.list_blobs()] == [len(payload)]
    assert store.list_parts() == [], "the part goes once the file has committed"
    assert not (tmp_path / "storage").exists(), "nothing went to the file system"

    whole = client.get(f"/download/{file.id}", headers=auth)
    assert whole.status_code == 200 and whole.data == payload
    one = client.get(f"/download/{file.id}", headers={**auth, "Range": "bytes=1000-1999"})
    assert one.status_code == 206 and one.data == payload[1000:2000]
    several = client.get(f"/download/{file.id}", headers={**auth, "Range": "bytes=0-9,299990-"})
    assert several.status_code == 206 and several.mimetype == "multipart/byteranges"
    assert payload[:10] in several.data and payload[299_990:] in several.data


def test_a_store_that_is_down_is_a_503_and_the_upload_resumes(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session], auth: dict[str, str]
) -> None:
    store = MemoryBlobStore()
    client = _client(tmp_path, engine, sessions, store)
    payload = os.urandom(2000)
    url = path_of(create(client, auth, len(payload)))
    assert patch(client, auth, url, 0, payload[:1000]).status_code == 204
    store.unavailable = True
    down = patch(client, auth, url, 1000, payload[1000:])
    assert down.status_code == 503 and down.json["code"] == "STORAGE_UNAVAILABLE"
    assert down.headers["Retry-After"]
    store.unavailable = False
    assert client.head(url, headers={**TUS, **auth}).headers["Upload-Offset"] == "1000"
    assert patch(client, auth, url, 1000, payload[1000:]).status_code == 204


def test_x_accel_redirect_falls_back_to_streaming_without_files(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    store = MemoryBlobStore()
    client = _client(
        tmp_path,
        engine,
        sessions,
        store,
        streaming={"x_accel_redirect": True, "x_accel_prefix": "/internal/"},
    )
    assert client.put(f"/upload/m/a.txt?{_put_query('m/a.txt', 3)}", data=b"abc").status_code == 201
    response = client.get("/upload/m/a.txt")
    assert "X-Accel-Redirect" not in response.headers and response.data == b"abc"
