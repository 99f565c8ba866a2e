"""tus header codecs and per-chunk digest headers."""

from __future__ import annotations

import base64
import hashlib

import pytest

from hmacfs.errors import BadRequest
from hmacfs.web.tus_headers import (
    encode_metadata,
    parse_chunk_digest,
    parse_concat,
    parse_metadata,
    parse_offset,
    parse_upload_checksum,
)


def test_metadata_round_trip_and_empty() -> None:
    metadata = {"filename": "világ.txt", "flag": None, "filetype": "text/plain"}
    assert parse_metadata(encode_metadata(metadata)) == metadata
    assert parse_metadata("") == {} and parse_metadata(None) == {} and parse_metadata("  ") == {}


@pytest.mark.parametrize("header", ["k !!!", "a b c", ",", "k aGk=,k aGk=", "bad/key aGk=", "k /w=="])
def test_bad_metadata(header: str) -> None:
    with pytest.raises(BadRequest):
        parse_metadata(header)


def test_upload_checksum() -> None:
    digest = hashlib.sha1(b"x").digest()
    parsed = parse_upload_checksum(f"sha1 {base64.b64encode(digest).decode()}")
    assert parsed is not None and parsed.algorithm == "sha1" and parsed.digest == digest
    assert parse_upload_checksum(None) is None
    for bad in ["crc32 AAAA", "sha1 !!", "sha256 " + base64.b64encode(b"short").decode()]:
        with pytest.raises(BadRequest):
            parse_upload_checksum(bad)


def test_chunk_digest_headers() -> None:
    digest = hashlib.sha256(b"x").digest()
    content = parse_chunk_digest(f"md5=:AAAA:, sha-256=:{base64.b64encode(digest).decode()}:", None)
    assert content is not None and content.digest == digest and content.header == "Content-Digest"
    hexed = parse_chunk_digest(None, digest.hex())
    assert hexed is not None and hexed.digest == digest and hexed.header == "X-Chunk-SHA256"
    assert parse_chunk_digest(None, None) is None
    for content_digest, hex_digest in [("sha-256=abc", None), ("sha-256=:AAAA:", None), (None, "zz")]:
        with pytest.raises(BadRequest):
            parse_chunk_digest(content_digest, hex_digest)


def test_offsets_and_concat() -> None:
    assert parse_offset("42") == 42
    for bad in [None, "-1", "x", ""]:
        with pytest.raises(BadRequest):
            parse_offset(bad)
    assert parse_concat("partial") is not None
    final = parse_concat("final;http://h/files/a /files/b")
    assert final is not None and final.kind == "final" and final.parts == ("a", "b")
    assert parse_concat(None) is None
    with pytest.raises(BadRequest):
        parse_concat("final;")
    with pytest.raises(BadRequest):
        parse_concat("whole")
