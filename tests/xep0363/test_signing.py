"""Signature messages and verification, with the issuers' public vectors."""

from __future__ import annotations

import time

import jwt
import pytest

from hmacfs.xep0363.signing import (
    BadPath,
    BadSignature,
    SignedRequest,
    extension_allowed,
    matches,
    message,
    sign,
    split_request_path,
    verify_file_share_token,
    verify_query,
)

V_VECTOR = "175d68df5d653fb2568ed853013d21cf38765567b25f9725e89c420d0cc71409"
V2_VECTOR = "621642a73b7495fcc47ca73a1ab009224d14a80b006b213b7ccb00152b09c902"


def _request(content_type: str = "image/jpeg", method: str = "PUT") -> SignedRequest:
    return SignedRequest(method, "foo/bar.jpg", "/upload/foo/bar.jpg", 1048576, content_type)


def test_public_vectors() -> None:
    assert sign("secret", message("v", _request())) == V_VECTOR
    assert sign("secret", message("v2", _request())) == V2_VECTOR
    assert message("token", _request()) == message("v2", _request())


def test_v2_defaults_the_content_type() -> None:
    assert message("v2", _request("")) == b"foo/bar.jpg\x001048576\x00application/octet-stream"


def test_v3_message_and_full_signed_path() -> None:
    assert message("v3", _request(), expires="1700000000") == b"PUT\n1700000000\n/upload/foo/bar.jpg"
    assert message("v", _request(), signed_path="full") == b"upload/foo/bar.jpg 1048576"


def test_rotation_tries_every_secret_and_accepts_upper_case_hex() -> None:
    data = message("v", _request())
    assert matches(["new", "secret"], data, V_VECTOR.upper())
    assert not matches(["new", "other"], data, V_VECTOR)
    assert not matches(["secret"], data, "zz")


def test_verify_query_picks_the_protocol() -> None:
    assert verify_query(["secret"], _request(), {"v2": V2_VECTOR}, now=0) == "v2"
    assert verify_query(["x", "secret"], _request(), {"v": V_VECTOR}, now=0) == "v"
    with pytest.raises(BadSignature, match="missing"):
        verify_query(["secret"], _request(), {}, now=0)
    with pytest.raises(BadSignature, match="mismatch"):
        verify_query(["secret"], _request("text/plain"), {"v2": V2_VECTOR}, now=0)


def test_v3_expiry() -> None:
    expires = str(int(time.time()) + 60)
    signature = sign("secret", message("v3", _request(), expires=expires))
    query = {"v3": signature, "expires": expires}
    assert verify_query(["secret"], _request(), query, now=time.time()) == "v3"
    with pytest.raises(BadSignature, match="expired"):
        verify_query(["secret"], _request(), query, now=time.time() + 120)
    with pytest.raises(BadSignature, match="expired"):
        verify_query(["secret"], _request(), {"v3": signature, "expires": "soon"}, now=0)


def _token(secret: str = "secret", **claims: object) -> str:
    base = {"slot": "foo", "filename": "bar.jpg", "filesize": 1048576, "filetype": "image/jpeg"}
    return jwt.encode({**base, "exp": int(time.time()) + 300, **claims}, secret, algorithm="HS256")


def test_file_share_token() -> None:
    verify_file_share_token(["secret"], _token(), _request())
    verify_file_share_token(["new", "secret"], _token(), _request())
    verify_file_share_token(["secret"], _token(filetype=None), _request("text/plain"))
    verify_file_share_token(["secret"], _token(), _request(""))  # no Content-Type sent
    for bad in (_token(filesize=1), _token(slot="x"), _token(filename="a.png"), _token(filetype="a/b")):
        with pytest.raises(BadSignature, match="does not match"):
            verify_file_share_token(["secret"], bad, _request())
    with pytest.raises(BadSignature, match="expired"):
        verify_file_share_token(["secret"], _token(exp=int(time.time()) - 100), _request())
    with pytest.raises(BadSignature, match="invalid"):
        verify_file_share_token(["secret"], _token("other"), _request())


def test_file_share_token_issued_by_a_clock_ahead_of_ours() -> None:
    """Prosody stamps ``iat`` with its own clock and checks only ``exp``; an issuer a
    little ahead of hmacfs (any skew between two hosts) must not be refused."""
    now = int(time.time())
    verify_file_share_token(["secret"], _token(iat=now + 120, exp=now + 420), _request())


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/upload/foo/bar.jpg?v=1", "foo/bar.jpg"),
        ("/upload/a%2bb/c+d.txt", "a+b/c+d.txt"),
        ("/upload/a%2Bb/%C3%A9t%c3%a9.txt", "a+b/été.txt"),
        ("http://host:1/upload/s/n.txt?x", "s/n.txt"),
        ("/upload/x/y/z.txt", "x/y/z.txt"),
    ],
)
def test_split_request_path(raw: str, path: str) -> None:
    assert split_request_path(raw, "/upload/", max_length=1024)[1] == path


@pytest.mark.parametrize(
    "raw",
    [
        "/upload/foo/../bar.jpg",
        "/upload/foo/%2e%2e/bar.jpg",
        "/upload//etc/passwd",
        "/upload/foo//bar.jpg",
        "/upload/foo/bar%00.jpg",
        "/upload/single",
        "/upload/foo/bar/",
        "/upload/foo/%ff.jpg",
        "/other/foo/bar.jpg",
        "/upload/foo/" + "a" * 2000,
    ],
)
def test_bad_paths(raw: str) -> None:
    with pytest.raises(BadPath):
        split_request_path(raw, "/upload/", max_length=1024)


def test_extensions() -> None:
    assert extension_allowed("a.JPG", [".jpg", "png"])
    assert extension_allowed("a.png", [".jpg", "png"])
    assert not extension_allowed("a.exe", [".jpg"])
    assert extension_allowed("a.exe", [])
