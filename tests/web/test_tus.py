"""tus 1.0 through the Flask client, on both backends."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hmacfs.models import File, Pool, UploadChunk, UploadTask
from hmacfs.web.tus_headers import encode_metadata, parse_metadata

TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {"Content-Type": "application/offset+octet-stream"}


def create(client: FlaskClient, auth: dict[str, str], length: int | None, **headers: str) -> Any:
    sizing = {"Upload-Length": str(length)} if length is not None else {"Upload-Defer-Length": "1"}
    meta = {"Upload-Metadata": encode_metadata({"filename": "song.ogg", "filetype": "audio/ogg"})}
    return client.post("/files/", headers={**TUS, **auth, **sizing, **meta, **headers})


def patch(
    client: FlaskClient, auth: dict[str, str], url: str, offset: int, data: bytes, **headers: str
) -> Any:
    return client.patch(
        url, data=data, headers={**TUS, **STREAM, **auth, "Upload-Offset": str(offset), **headers}
    )


def path_of(response: Any) -> str:
    location: str = response.headers["Location"]
    assert location.startswith("http://localhost/files/")
    return location.removeprefix("http://localhost")


def test_options_advertises_extensions(client: FlaskClient) -> None:
    response = client.options("/files/")
    assert response.status_code == 204 and response.headers["Tus-Version"] == "1.0.0"
    assert "concatenation" in response.headers["Tus-Extension"]
    assert response.headers["Tus-Checksum-Algorithm"] == "sha1,md5,sha256"


def test_create_patch_head_complete(client: FlaskClient, auth: dict[str, str], session: Session) -> None:
    payload = os.urandom(3000)
    created = create(client, auth, len(payload))
    assert created.status_code == 201 and "Upload-Expires" in created.headers
    url = path_of(created)
    first = patch(client, auth, url, 0, payload[:1000])
    assert first.status_code == 204 and first.headers["Upload-Offset"] == "1000"
    conflict = patch(client, auth, url, 0, payload[:1000])
    assert conflict.status_code == 409 and conflict.headers["Tus-Resumable"] == "1.0.0"
    head = client.head(url, headers={**TUS, **auth})
    assert head.headers["Upload-Offset"] == "1000" and head.headers["Upload-Length"] == "3000"
    assert head.headers["Cache-Control"] == "no-store"
    assert parse_metadata(head.headers["Upload-Metadata"]) == {
        "filename": "song.ogg",
        "filetype": "audio/ogg",
    }
    sha1 = base64.b64encode(hashlib.sha1(payload[1000:]).digest()).decode()
    last = patch(client, auth, url, 1000, payload[1000:], **{"Upload-Checksum": f"sha1 {sha1}"})
    assert last.status_code == 204 and last.headers["Upload-Offset"] == "3000"
    file = session.scalars(select(File).where(File.name == "song.ogg")).one()
    assert file.sha256 == hashlib.sha256(payload).hexdigest() and file.content_type == "audio/ogg"


def test_checksum_mismatch_is_460_and_discarded(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    url = path_of(create(client, auth, 10))
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    response = patch(client, auth, url, 0, b"0123456789", **{"Upload-Checksum": f"md5 {wrong}"})
    assert response.status_code == 460
    assert client.head(url, headers={**TUS, **auth}).headers["Upload-Offset"] == "0"
    assert session.scalars(select(UploadChunk)).all() == []
    bad_algorithm = patch(client, auth, url, 0, b"0123456789", **{"Upload-Checksum": "crc32 AAAA"})
    assert bad_algorithm.status_code == 400


def test_protocol_errors(client: FlaskClient, auth: dict[str, str]) -> None:
    no_version = client.post("/files/", headers={**auth, "Upload-Length": "5"})
    assert no_version.status_code == 412 and no_version.headers["Tus-Version"] == "1.0.0"
    too_big = create(client, auth, 11 * 1024**3)
    assert too_big.status_code == 413
    url = path_of(create(client, auth, 5))
    assert patch(client, auth, url, 0, b"123456").status_code == 413
    wrong_type = client.patch(url, data=b"1", headers={**TUS, **auth, "Upload-Offset": "0"})
    assert wrong_type.status_code == 415
    assert patch(client, auth, url, 0, b"1", **{"Upload-Offset": "x"}).status_code == 400
    bad_meta = client.post(
        "/files/", headers={**TUS, **auth, "Upload-Length": "5", "Upload-Metadata": "k !!"}
    )
    assert bad_meta.status_code == 400
    empty_meta = client.post("/files/", headers={**TUS, **auth, "Upload-Length": "5", "Upload-Metadata": ""})
    assert empty_meta.status_code == 201
    assert client.head("/files/nope", headers={**TUS, **auth}).status_code == 404
    stranger = {"Authorization": auth["Authorization"][:-4] + "AAAA"}
    assert client.head(url, headers={**TUS, **stranger}).status_code == 401


def test_other_account_and_anonymous(client: FlaskClient, auth: dict[str, str], session: Session) -> None:
    from tests.conftest import bearer

    url = path_of(create(client, auth, 5))
    assert client.head(url, headers={**TUS, **bearer(uuid.uuid4())}).status_code == 404
    assert create(client, {}, 5).status_code == 401
    session.execute(update(Pool).values(allow_anonymous=True))
    anonymous = path_of(create(client, {}, 5))
    assert patch(client, {}, anonymous, 0, b"12345").status_code == 204


def test_creation_with_upload_defer_length_override_and_termination(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    with_body = client.post(
        "/files/", data=b"hello", headers={**TUS, **STREAM, **auth, "Upload-Length": "10"}
    )
    assert with_body.status_code == 201 and with_body.headers["Upload-Offset"] == "5"
    deferred = path_of(create(client, auth, None))
    assert client.head(deferred, headers={**TUS, **auth}).headers["Upload-Defer-Length"] == "1"
    assert patch(client, auth, deferred, 0, b"abc").headers["Upload-Offset"] == "3"
    override = {"X-HTTP-Method-Override": "PATCH", "Upload-Length": "5"}
    done = client.post(
        deferred, data=b"de", headers={**TUS, **STREAM, **auth, "Upload-Offset": "3", **override}
    )
    assert done.status_code == 204 and done.headers["Upload-Offset"] == "5"
    url = path_of(with_body)
    assert client.delete(url, headers={**TUS, **auth}).status_code == 204
    assert client.head(url, headers={**TUS, **auth}).status_code == 410


def test_concatenation(client: FlaskClient, auth: dict[str, str], session: Session) -> None:
    parts = []
    for data in (b"first-", b"second"):
        url = path_of(create(client, auth, len(data), **{"Upload-Concat": "partial"}))
        patch(client, auth, url, 0, data)
        parts.append(url)
    final = client.post("/files/", headers={**TUS, **auth, "Upload-Concat": "final;" + " ".join(parts)})
    assert final.status_code == 201
    head = client.head(path_of(final), headers={**TUS, **auth})
    assert head.headers["Upload-Offset"] == "12"
    assert head.headers["Upload-Concat"] == "final;" + " ".join(f"http://localhost{url}" for url in parts)
    assert session.scalars(
        select(File).where(File.sha256 == hashlib.sha256(b"first-second").hexdigest())
    ).one()
    assert patch(client, auth, path_of(final), 12, b"x").status_code == 403


def test_location_behind_proxy_and_base_url(
    tmp_path: Any, engine: Any, sessions: Any, auth: dict[str, str]
) -> None:
    from hmacfs.app import create_app
    from hmacfs.db import Database
    from tests.conftest import make_settings

    url = engine.url.render_as_string(hide_password=False)
    proxied = create_app(
        make_settings(
            tmp_path / "s", url, server={"trusted_proxy_count": 1, "trusted_hosts": ["files.example.org"]}
        ),
        db=Database(engine, sessions),
    ).test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "files.example.org"}
    response = create(proxied, {**auth, **forwarded}, 5)
    assert response.headers["Location"].startswith("https://files.example.org/files/")
    based = create_app(
        make_settings(tmp_path / "s", url, server={"base_url": "https://up.example.net/"}),
        db=Database(engine, sessions),
    ).test_client()
    assert create(based, auth, 5).headers["Location"].startswith("https://up.example.net/files/")
    untrusted = create(based, {**auth, **forwarded}, 5)
    assert "files.example.org" not in untrusted.headers["Location"]


def test_concurrent_writer_gets_423(
    client: FlaskClient, auth: dict[str, str], session: Session, app: Any
) -> None:
    from hmacfs.models import UploadTask
    from hmacfs.uploads.offsets import upload_lock_key

    url = path_of(create(client, auth, 5))
    task = session.scalars(select(UploadTask).where(UploadTask.task_id == url.rsplit("/", 1)[1])).one()
    with app.extensions["hmacfs"].locker.hold(upload_lock_key(task)):
        busy = patch(client, auth, url, 0, b"12345")
    assert busy.status_code == 423 and busy.headers["Tus-Resumable"] == "1.0.0"
    assert patch(client, auth, url, 0, b"12345").status_code == 204


def test_empty_upload_completes_at_creation(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    created = create(client, auth, 0)
    assert created.status_code == 201 and created.headers["Upload-Offset"] == "0"
    assert "Upload-Expires" not in created.headers  # finished: nothing left to expire
    empty = hashlib.sha256(b"").hexdigest()
    assert session.scalars(select(File).where(File.sha256 == empty)).one().size == 0


def test_allowed_extensions(engine: Any, sessions: Any, tmp_path: Any, auth: dict[str, str]) -> None:
    from hmacfs.app import create_app
    from hmacfs.db import Database
    from tests.conftest import make_settings

    settings = make_settings(
        tmp_path / "s",
        engine.url.render_as_string(hide_password=False),
        uploads={"allowed_extensions": [".ogg"]},
    )
    client = create_app(settings, db=Database(engine, sessions)).test_client()
    assert create(client, auth, 5).status_code == 201  # song.ogg
    other = {"Upload-Metadata": encode_metadata({"filename": "x.exe"})}
    refused = client.post("/files/", headers={**TUS, **auth, "Upload-Length": "5", **other})
    assert refused.status_code == 400 and refused.json["code"] == "EXTENSION_NOT_ALLOWED"


def test_in_order_patches_complete_without_reading_the_part_again(
    client: FlaskClient, auth: dict[str, str], session: Session, part_reads: list[tuple[int, int]]
) -> None:
    """The SHA-256 is computed while the PATCHes arrive; completion does not re-read."""
    payload = os.urandom(5000)
    url = path_of(create(client, auth, len(payload)))
    for offset in range(0, len(payload), 2000):
        assert patch(client, auth, url, offset, payload[offset : offset + 2000]).status_code == 204
    file = session.scalars(select(File).where(File.name == "song.ogg")).one()
    assert file.sha256 == hashlib.sha256(payload).hexdigest()
    assert part_reads == []  # completion did not re-read the part


def test_an_upload_whose_running_hash_does_not_reach_the_offset_is_hashed_at_completion(
    client: FlaskClient, auth: dict[str, str], session: Session, part_reads: list[tuple[int, int]]
) -> None:
    """As an upload begun before the running hash existed: its row has no state at the
    offset, so the next PATCHes cannot continue it and completion streams the part once."""
    payload = os.urandom(4000)
    url = path_of(create(client, auth, len(payload)))
    assert patch(client, auth, url, 0, payload[:2000]).status_code == 204
    session.execute(update(UploadTask).values(hashed_bytes=0, hash_state=None))
    session.flush()
    assert patch(client, auth, url, 2000, payload[2000:]).status_code == 204
    file = session.scalars(select(File).where(File.name == "song.ogg")).one()
    assert file.sha256 == hashlib.sha256(payload).hexdigest() and part_reads == [(0, len(payload))]


def test_a_completed_upload_names_its_file(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    payload = os.urandom(2000)
    url = path_of(create(client, auth, len(payload)))
    first = patch(client, auth, url, 0, payload[:500])
    assert (
        "Hmacfs-File-Id" not in first.headers
        and "Hmacfs-File-Id" not in client.head(url, headers={**TUS, **auth}).headers
    )
    last = patch(client, auth, url, 500, payload[500:])
    file = session.scalars(select(File).where(File.sha256 == hashlib.sha256(payload).hexdigest())).one()
    assert last.headers["Hmacfs-File-Id"] == str(file.id)
    assert last.headers["Hmacfs-File-Url"] == f"http://localhost/download/{file.id}"
    head = client.head(url, headers={**TUS, **auth})
    assert head.headers["Hmacfs-File-Id"] == str(file.id)
    assert client.get(f"/download/{file.id}", headers=auth).data == payload
    whole = client.post("/files/", data=b"hi", headers={**TUS, **STREAM, **auth, "Upload-Length": "2"})
    assert whole.status_code == 201 and whole.headers["Hmacfs-File-Id"]
