"""Malformed requests found by fuzzing get a 4xx with a stable code, never a 500 (both backends).

Each case is a regression test for one cause of issue 17 part 9.
"""

from __future__ import annotations

import base64
import io
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from hmacfs.downloads.http import content_disposition
from hmacfs.events.stream import parse_since
from hmacfs.models import UploadTask
from hmacfs.uploads.chunking import progress_percent
from tests.conftest import bearer, signed_upload

API = "/api/files/upload"
TUS = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
NUL_IDS = [
    ("GET", f"{API}/progress/%00"),
    ("GET", f"{API}/resume/%00"),
    ("DELETE", f"{API}/task/%00"),
    ("GET", f"{API}/tasks/%00/details"),
    ("POST", f"{API}/complete/%00"),
    ("POST", f"{API}/chunk/%00/0"),
    ("GET", "/drive/files/upload/progress/%00"),
    ("GET", "/api/tasks/%00"),
    ("GET", "/api/tasks/%00/details"),
    ("POST", "/api/tasks/%00/pause"),
    ("HEAD", "/files/%00"),
    ("PATCH", "/files/%00"),
    ("DELETE", "/files/%00"),
    ("GET", "/upload/status?session_id=%00"),
    ("GET", "/upload-status?session_id=a%00b"),
]


def _json(client: FlaskClient, path: str, body: Any, auth: dict[str, str]) -> Any:
    return client.post(path, data=body, headers={**auth, "Content-Type": "application/json"})


@pytest.fixture
def auth(account: uuid.UUID) -> dict[str, str]:
    return bearer(account)


@pytest.mark.parametrize(("method", "path"), NUL_IDS)
def test_nul_in_an_id(client: FlaskClient, auth: dict[str, str], method: str, path: str) -> None:
    answer = client.open(path, method=method, headers={**auth, **TUS})
    assert answer.status_code == 400
    if method != "HEAD":
        assert answer.json["code"] == "INVALID_CHARACTER"


def test_nul_in_a_chunk_session_header(client: FlaskClient) -> None:
    answer = client.put(
        "/upload/chunked", data=b"x", headers={"X-Upload-Session-ID": "a\0", "X-Chunk-Number": "0"}
    )
    assert (answer.status_code, answer.json["code"]) == (400, "INVALID_CHARACTER")


@pytest.mark.parametrize("key", ["filename", "filetype", "note"])
def test_nul_in_tus_metadata(client: FlaskClient, auth: dict[str, str], key: str) -> None:
    values = {"filename": b"a.txt", "filetype": b"text/plain", key: b"x\0y"}
    metadata = ",".join(f"{k} {base64.b64encode(v).decode()}" for k, v in values.items())
    answer = client.post(
        "/files/", headers={**auth, **TUS, "Upload-Length": "5", "Upload-Metadata": metadata}
    )
    assert (answer.status_code, answer.json["code"]) == (400, "INVALID_METADATA")


def test_bad_tus_filetype(client: FlaskClient, auth: dict[str, str]) -> None:
    metadata = (
        f"filename {base64.b64encode(b'a.txt').decode()},filetype {base64.b64encode(b'x' * 300).decode()}"
    )
    answer = client.post(
        "/files/", headers={**auth, **TUS, "Upload-Length": "5", "Upload-Metadata": metadata}
    )
    assert (answer.status_code, answer.json["code"]) == (400, "INVALID_CONTENT_TYPE")


@pytest.mark.parametrize(
    ("content_type", "code"),
    [
        ("text/\0plain", "INVALID_JSON"),
        ("text/" + "p" * 300, "INVALID_CONTENT_TYPE"),
        ("no slash", "INVALID_CONTENT_TYPE"),
    ],
)
def test_bad_drive_content_type(
    client: FlaskClient, auth: dict[str, str], content_type: str, code: str
) -> None:
    body = {"fileName": "a.txt", "fileSize": 5, "hash": "0" * 64, "contentType": content_type}
    answer = client.post(f"{API}/create", json=body, headers=auth)
    assert (answer.status_code, answer.json["code"]) == (400, code)


@pytest.mark.parametrize("path", [f"{API}/create", "/api/tasks"])
def test_deeply_nested_json(client: FlaskClient, auth: dict[str, str], path: str) -> None:
    for depth in (50_000, 40):
        deep = '{"a":' * depth + "1" + "}" * depth
        answer = _json(client, path, deep, auth)
        assert (answer.status_code, answer.json["code"]) == (400, "INVALID_JSON"), depth
    nul_key = _json(client, path, '{"type": "Custom", "parameters": {"a\\u0000": 1}}', auth)
    assert (nul_key.status_code, nul_key.json["code"]) == (400, "INVALID_JSON")


def test_oversized_json(client: FlaskClient, auth: dict[str, str]) -> None:
    answer = _json(client, "/api/tasks", '{"type": "' + "x" * (2 * 1024 * 1024) + '"}', auth)
    assert (answer.status_code, answer.json["code"]) == (413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize("path", [f"{API}/tasks", "/api/tasks"])
@pytest.mark.parametrize("name", ["offset", "limit"])
def test_offsets_past_64_bits(client: FlaskClient, auth: dict[str, str], path: str, name: str) -> None:
    answer = client.get(f"{path}?{name}=9223372036854775808", headers=auth)
    assert answer.status_code == 400 and answer.json["details"]["field"] == name
    assert client.get(f"{path}?offset=9223372036854775807", headers=auth).status_code == 200


def test_since_past_64_bits() -> None:
    assert parse_since("9223372036854775807") == 2**63 - 1
    for bad in ("9223372036854775808", "-1", "1" * 5000):
        with pytest.raises(ValueError):
            parse_since(bad)


# -- names with bidirectional controls ------------------------------------------------------
RLO_NAME = "invoice\u202efdp.exe"


def test_bidi_names_are_refused_on_every_upload_path(client: FlaskClient, auth: dict[str, str]) -> None:
    body = {"fileName": RLO_NAME, "fileSize": 5, "hash": "0" * 64, "contentType": "application/pdf"}
    drive = client.post(f"{API}/create", json=body, headers=auth)
    assert (drive.status_code, drive.json["code"]) == (400, "INVALID_FILE_NAME")
    metadata = f"filename {base64.b64encode(RLO_NAME.encode()).decode()}"
    tus = client.post("/files/", headers={**auth, **TUS, "Upload-Length": "5", "Upload-Metadata": metadata})
    assert (tus.status_code, tus.json["code"]) == (400, "INVALID_FILE_NAME")
    multipart = client.post(
        "/upload",
        headers=auth,
        data={"file": (io.BytesIO(b"x"), RLO_NAME)},
        content_type="multipart/form-data",
    )
    assert (multipart.status_code, multipart.json["code"]) == (400, "BAD_FILENAME")
    chunked = signed_upload("/upload/chunked", RLO_NAME, 5)
    chunked["X-Filename"] = RLO_NAME.encode().decode("latin-1")  # UTF-8 bytes on the wire
    answer = client.post("/upload/chunked", headers=chunked)
    assert (answer.status_code, answer.json["code"]) == (400, "INVALID_FILE_NAME")
    slot = client.put("/upload/slot/invoice%E2%80%AEfdp.exe?v=00", data=b"x")
    assert (slot.status_code, slot.json["code"]) == (400, "BAD_PATH")


def test_content_disposition_drops_bidi_controls() -> None:
    header = content_disposition(RLO_NAME, "application/octet-stream")
    assert "\u202e" not in header and "%E2%80%AE" not in header
    assert header == 'attachment; filename="invoicefdp.exe"'


def test_progress_is_100_only_when_every_byte_is_in() -> None:
    size = 10_000_000
    assert progress_percent(size - 1, size) == 99.99
    assert progress_percent(size, size) == 100.0
    assert progress_percent(size // 2, size) == 50.0


def test_drive_progress_of_the_last_missing_byte(
    client: FlaskClient, auth: dict[str, str], session: Session
) -> None:
    """One byte short of 10 MB used to round to 100.0 on /progress and in task lists."""
    size = 10_000_000
    created = client.post(
        f"{API}/create",
        json={
            "fileName": "a.bin",
            "fileSize": size,
            "hash": "0" * 64,
            "contentType": "application/octet-stream",
        },
        headers=auth,
    ).json
    session.execute(
        update(UploadTask).where(UploadTask.task_id == created["taskId"]).values(bytes_received=size - 1)
    )
    session.commit()
    assert client.get(f"{API}/progress/{created['taskId']}", headers=auth).json["progress"] == 99.99
    listed = client.get(f"{API}/tasks", headers=auth).json
    assert [task["progress"] for task in listed] == [99.99]


# -- Host header -------------------------------------------------------------------------
def test_untrusted_host_is_never_echoed(client: FlaskClient, auth: dict[str, str]) -> None:
    evil = {"Host": "evil.example"}
    metadata = f"filename {base64.b64encode(b'a.txt').decode()}"
    tus = client.post(
        "/files/", headers={**auth, **TUS, **evil, "Upload-Length": "5", "Upload-Metadata": metadata}
    )
    assert tus.status_code == 201 and tus.headers["Location"].startswith("/files/")
    multipart = client.post(
        "/upload",
        headers={**auth, **evil},
        data={"file": (io.BytesIO(b"hello"), "a.txt")},
        content_type="multipart/form-data",
    )
    assert multipart.status_code == 201 and multipart.json["url"].startswith("/download/")
    trusted = client.post(
        "/files/", headers={**auth, **TUS, "Upload-Length": "5", "Upload-Metadata": metadata}
    )
    assert trusted.headers["Location"].startswith("http://localhost/files/")


def test_xep0363_content_type_longer_than_the_column(client: FlaskClient) -> None:
    from urllib.parse import urlencode

    from hmacfs.xep0363.signing import SignedRequest, signed_query
    from tests.conftest import HMAC_SECRET

    content_type = "application/" + "x" * 300
    request = SignedRequest("PUT", "slot9/a.txt", "/upload/slot9/a.txt", 5, content_type)
    query = urlencode(signed_query(HMAC_SECRET, "v", request))
    answer = client.put(f"/upload/slot9/a.txt?{query}", data=b"12345", headers={"Content-Type": content_type})
    assert (answer.status_code, answer.json["code"]) == (400, "INVALID_CONTENT_TYPE")
