"""Bound X-Signature on POST /upload and POST /upload/chunked (docs/signatures.md), both backends."""

from __future__ import annotations

import hashlib
import hmac
import io
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hmacfs import upload_signing
from hmacfs.app import create_app
from hmacfs.config import Settings
from hmacfs.db import Database
from hmacfs.upload_signing import SignedUpload, bound_message
from hmacfs.xep0363 import signing
from tests.conftest import HMAC_SECRET, make_settings, signed_upload


def _post(client: FlaskClient, headers: dict[str, str], name: str, body: bytes) -> Any:
    return client.post(
        "/upload",
        headers=headers,
        data={"file": (io.BytesIO(body), name)},
        content_type="multipart/form-data",
    )


def _parts(settings: Settings) -> list[Path]:
    return list((settings.storage.path / "parts").glob("*.part"))


def _static(path: str) -> dict[str, str]:
    return {"X-Signature": hmac.new(HMAC_SECRET.encode(), path.encode(), hashlib.sha256).hexdigest()}


def test_the_message_format_is_fixed() -> None:
    upload = SignedUpload("post", "/upload", 1700000000, "r\u00e9sum\u00e9.pdf", 42)
    assert (
        bound_message(upload)
        == "hmacfs-upload-1\nPOST\n/upload\n1700000000\nr\u00e9sum\u00e9.pdf\n42".encode()
    )


def test_signatures_compare_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    upload = SignedUpload("POST", "/upload", int(time.time()) + 60, "a.txt", 3)
    good = upload_signing.sign_upload("k2", upload)["X-Signature"]
    upload_signing.verify_bound(("k1", "k2", "k3"), upload, good, now=time.time())
    assert len(calls) == 3  # every secret is tried, no early exit on a match


def test_bound_multipart_upload(client: FlaskClient, settings: Settings) -> None:
    body = b"hello, bound world"
    answer = _post(client, signed_upload("/upload", "hello.txt", len(body)), "hello.txt", body)
    assert answer.status_code == 201, answer.json
    assert answer.json["filename"] == "hello.txt" and answer.json["size"] == len(body)
    assert _parts(settings) == []


@pytest.mark.parametrize(
    "case",
    [
        ("other.txt", b"12345", 403, "FILE_NAME_MISMATCH"),
        ("a.txt", b"123456", 413, "PAYLOAD_TOO_LARGE"),
        ("a.txt", b"1234", 400, "SIZE_MISMATCH"),
    ],
)
def test_the_file_must_be_the_signed_one(
    client: FlaskClient, settings: Settings, case: tuple[str, bytes, int, str]
) -> None:
    sent_name, sent_body, status, code = case
    answer = _post(client, signed_upload("/upload", "a.txt", 5), sent_name, sent_body)
    assert (answer.status_code, answer.json["code"]) == (status, code)
    assert _parts(settings) == []


def test_a_leaked_signature_does_not_stretch(client: FlaskClient) -> None:
    headers = signed_upload("/upload", "a.txt", 5)
    for key, value in (
        ("X-Total-Size", "6"),
        ("X-Filename", "b.txt"),
        ("X-Signature-Expires", "99999999999"),
    ):
        answer = _post(client, {**headers, key: value}, "a.txt" if key != "X-Filename" else "b.txt", b"x")
        assert (answer.status_code, answer.json["code"]) == (403, "BAD_SIGNATURE"), key
    # Made for the chunked API, it does not open a multipart upload either.
    chunked = signed_upload("/upload/chunked", "a.txt", 5)
    assert _post(client, chunked, "a.txt", b"12345").json["code"] == "BAD_SIGNATURE"


def test_expired_and_malformed_expiries(client: FlaskClient) -> None:
    expired = _post(client, signed_upload("/upload", "a.txt", 5, ttl=-1), "a.txt", b"12345")
    assert (expired.status_code, expired.json["code"]) == (403, "SIGNATURE_EXPIRED")
    garbage = {**signed_upload("/upload", "a.txt", 5), "X-Signature-Expires": "tomorrow"}
    assert _post(client, garbage, "a.txt", b"12345").json["code"] == "BAD_SIGNATURE_EXPIRES"
    missing = signed_upload("/upload", "a.txt", 5)
    del missing["X-Total-Size"]
    answer = _post(client, missing, "a.txt", b"12345")
    assert (answer.status_code, answer.json["code"]) == (400, "MISSING_HEADER")


def test_static_form_is_refused_by_default(client: FlaskClient) -> None:
    for path in ("/upload", "/upload/chunked"):
        headers = {**_static(path), "X-Filename": "a.txt", "X-Total-Size": "5"}
        answer = (
            client.post(path, headers=headers) if path != "/upload" else _post(client, headers, "a.txt", b"1")
        )
        assert (answer.status_code, answer.json["code"]) == (403, "SIGNATURE_NOT_BOUND"), path


def test_static_form_behind_the_compatibility_switch(
    tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    settings = make_settings(tmp_path / "s", url, security={"allow_static_signature": True})
    app: Flask = create_app(settings, db=Database(engine=engine, sessions=sessions))
    client = app.test_client()
    assert _post(client, _static("/upload"), "a.txt", b"any size").status_code == 201
    assert _post(client, {"X-Signature": "00" * 32}, "a.txt", b"x").json["code"] == "BAD_SIGNATURE"
    # The bound form still works, and is still held to its name and size.
    assert _post(client, signed_upload("/upload", "a.txt", 3), "a.txt", b"abc").status_code == 201
    assert _post(client, signed_upload("/upload", "a.txt", 3), "a.txt", b"abcd").status_code == 413


def test_previous_secrets_sign_too(tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]) -> None:
    url = engine.url.render_as_string(hide_password=False)
    settings = make_settings(
        tmp_path / "s", url, security={"secret": "new-secret", "previous_secrets": [HMAC_SECRET]}
    )
    client = create_app(settings, db=Database(engine=engine, sessions=sessions)).test_client()
    assert _post(client, signed_upload("/upload", "a.txt", 3), "a.txt", b"abc").status_code == 201
    retired = signed_upload("/upload", "a.txt", 3, secret="retired")
    assert _post(client, retired, "a.txt", b"abc").status_code == 403


def test_chunked_session_is_bound_to_its_name_and_size(client: FlaskClient) -> None:
    headers = signed_upload("/upload/chunked", "movie.bin", 10)
    assert client.post("/upload/chunked", headers={**headers, "X-Total-Size": "11"}).status_code == 403
    assert client.post("/upload/chunked", headers={**headers, "X-Filename": "m.bin"}).status_code == 403
    opened = client.post("/upload/chunked", headers=headers)
    assert opened.status_code == 201 and opened.json["total_chunks"] == 1


def test_cli_prints_headers_the_server_takes(client: FlaskClient, tmp_path: Path) -> None:
    from tests.test_cli import good_config, run

    result = run(
        "sign-upload", "--name", "cli.txt", "--size", "4", "--expires-in", "5m", config=good_config(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    headers = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert abs(int(headers["X-Signature-Expires"]) - (time.time() + 300)) < 30
    assert _post(client, headers, "cli.txt", b"1234").status_code == 201
