"""Pure codecs for tus 1.0 headers and the per-chunk digest headers of the Drive and chunked APIs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from hmacfs.errors import BadRequest
from hmacfs.uploads.engine import ExpectedDigest

TUS_VERSION = "1.0.0"
CHECKSUM_ALGORITHMS = ("sha1", "md5", "sha256")
_KEY = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_DIGEST_ITEM = re.compile(r"^\s*([A-Za-z0-9-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _bad(message: str, code: str, header: str) -> BadRequest:
    return BadRequest(message, code=code, details={"field": header})


def parse_metadata(header: str | None) -> dict[str, str | None]:
    """Decode ``Upload-Metadata``: comma-separated ``key base64value`` pairs; empty is valid."""
    result: dict[str, str | None] = {}
    if header is None or not header.strip():
        return result
    for item in header.split(","):
        parts = item.strip().split(" ")
        if not parts[0] or len(parts) > 2 or not _KEY.match(parts[0]) or parts[0] in result:
            raise _bad("malformed Upload-Metadata", "INVALID_METADATA", "Upload-Metadata")
        result[parts[0]] = _b64_text(parts[1]) if len(parts) == 2 else None
    return result


def _b64_text(value: str) -> str:
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad(
            "Upload-Metadata value is not base64 UTF-8", "INVALID_METADATA", "Upload-Metadata"
        ) from None
    if "\0" in text:  # no database text column can hold it
        raise _bad("Upload-Metadata value holds a NUL", "INVALID_METADATA", "Upload-Metadata")
    return text


def encode_metadata(metadata: dict[str, str | None]) -> str:
    items = []
    for key, value in metadata.items():
        items.append(key if value is None else f"{key} {base64.b64encode(value.encode()).decode()}")
    return ",".join(items)


def parse_upload_checksum(header: str | None) -> ExpectedDigest | None:
    """``Upload-Checksum: <algorithm> <base64 digest>`` (sha1, md5, sha256)."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise _bad(f"unsupported checksum algorithm {algorithm!r}", "UNSUPPORTED_CHECKSUM", "Upload-Checksum")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _bad("Upload-Checksum digest is not base64", "INVALID_CHECKSUM", "Upload-Checksum") from None
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise _bad("Upload-Checksum digest has the wrong length", "INVALID_CHECKSUM", "Upload-Checksum")
    return ExpectedDigest(algorithm, digest, "Upload-Checksum")


def parse_chunk_digest(content_digest: str | None, chunk_sha256: str | None) -> ExpectedDigest | None:
    """The SHA-256 a chunk request declared: ``Content-Digest: sha-256=:…:`` or ``X-Chunk-SHA256`` (hex)."""
    if content_digest:
        for item in content_digest.split(","):
            match = _DIGEST_ITEM.match(item)
            if match is None:
                raise _bad("malformed Content-Digest", "INVALID_DIGEST", "Content-Digest")
            if match.group(1).lower() == "sha-256":
                digest = _b64_digest(match.group(2))
                return ExpectedDigest("sha256", digest, "Content-Digest")
    if chunk_sha256:
        if not _HEX64.match(chunk_sha256.strip()):
            raise _bad("X-Chunk-SHA256 must be 64 hex digits", "INVALID_DIGEST", "X-Chunk-SHA256")
        return ExpectedDigest("sha256", bytes.fromhex(chunk_sha256.strip()), "X-Chunk-SHA256")
    return None


def _b64_digest(value: str) -> bytes:
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise _bad("Content-Digest sha-256 must be 32 bytes in base64", "INVALID_DIGEST", "Content-Digest")
    return digest


def parse_offset(header: str | None, name: str = "Upload-Offset") -> int:
    """A non-negative decimal integer header; raises BadRequest naming it."""
    if header is None or not header.strip().isdigit():
        raise _bad(f"{name} must be a non-negative integer", "INVALID_HEADER", name)
    return int(header.strip())


@dataclass(frozen=True)
class Concat:
    kind: str  # "partial" | "final"
    parts: tuple[str, ...] = ()  # upload ids of a final concatenation


def parse_concat(header: str | None) -> Concat | None:
    """``Upload-Concat: partial`` or ``final;<url> <url> …`` (URLs reduced to their last path segment)."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    if value == "partial":
        return Concat("partial")
    if not value.startswith("final;"):
        raise _bad("Upload-Concat must be 'partial' or 'final;<urls>'", "INVALID_CONCAT", "Upload-Concat")
    ids = tuple(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] for url in value[6:].split())
    if not ids or not all(ids):
        raise _bad("Upload-Concat final names no uploads", "INVALID_CONCAT", "Upload-Concat")
    return Concat("final", ids)
