"""XEP-0363 slot signatures: the message each issuer signs, and their verification.

Pure functions, no I/O. Every protocol is HMAC-SHA256 over a protocol-specific
message, written as lower-case hex and compared in constant time against the
current secret and then each previous secret (rotation):

- ``v`` (Prosody mod_http_upload_external v1, ejabberd): ``path + " " + size``
- ``v2`` (Prosody v2) and ``token`` (Metronome): ``path \\0 size \\0 content_type``
- ``v3`` + ``expires`` (hmac-file-server): ``METHOD \\n expires \\n full_path``
- a Prosody 0.12 ``mod_http_file_share`` JWT (HS256) whose claims must match.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

import jwt

from hmacfs.errors import BadRequest, Forbidden
from hmacfs.names import has_bidi_control

PROTOCOLS = ("v3", "v2", "token", "v")
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class BadPath(BadRequest):
    code = "BAD_PATH"


class BadSignature(Forbidden):
    code = "BAD_SIGNATURE"


@dataclass(frozen=True)
class SignedRequest:
    """What a signature covers. ``path`` is the decoded slot path (``slot/name``),
    ``full_path`` the decoded request path (``/upload/slot/name``)."""

    method: str
    path: str
    full_path: str
    size: int
    content_type: str


def message(
    protocol: str, request: SignedRequest, *, expires: str = "", signed_path: str = "relative"
) -> bytes:
    """The bytes the issuer signed for ``protocol``; ``signed_path`` "full" signs the
    whole request path (without its leading slash) instead of the slot path."""
    path = request.full_path.lstrip("/") if signed_path == "full" else request.path
    if protocol == "v":
        text = f"{path} {request.size}"
    elif protocol in ("v2", "token"):
        text = f"{path}\0{request.size}\0{request.content_type or DEFAULT_CONTENT_TYPE}"
    elif protocol == "v3":
        text = f"{request.method}\n{expires}\n{request.full_path}"
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    return text.encode("utf-8")


def sign(secret: str, data: bytes) -> str:
    """HMAC-SHA256 of ``data`` keyed with ``secret``, lower-case hex."""
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def matches(secrets: Iterable[str], data: bytes, signature: str) -> bool:
    """True when ``signature`` is the HMAC of ``data`` under any of ``secrets``.

    Every secret is tried (no early exit) so timing does not tell which matched.
    """
    given = signature.strip().lower().encode("ascii", "replace")
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(sign(secret, data).encode("ascii"), given)
    return found


def verify_query(
    secrets: Iterable[str],
    request: SignedRequest,
    query: Mapping[str, str],
    *,
    now: float,
    signed_path: str = "relative",
) -> str:
    """Check the query-string signature; return the protocol used.

    Raises BadSignature (403) when none is present, it is wrong, or (v3) it expired.
    """
    protocol = next((name for name in PROTOCOLS if query.get(name)), None)
    if protocol is None:
        raise BadSignature("missing signature", code="MISSING_SIGNATURE")
    expires = query.get("expires", "") if protocol == "v3" else ""
    if protocol == "v3" and not _still_valid(expires, now):
        raise BadSignature("signature expired", code="SIGNATURE_EXPIRED")
    data = message(protocol, request, expires=expires, signed_path=signed_path)
    if not matches(secrets, data, query[protocol]):
        raise BadSignature("signature mismatch")
    return protocol


def _still_valid(expires: str, now: float) -> bool:
    return expires.isdigit() and int(expires) >= now


@dataclass(frozen=True)
class FileShareGrant:
    """What a verified file-share token says beyond the slot: ``uploader`` (its ``sub``, the
    uploader's JID; None when absent) and ``expires`` (its ``expires`` claim: when the
    file should go; None when absent)."""

    uploader: str | None
    expires: datetime | None


def verify_file_share_token(secrets: Iterable[str], token: str, request: SignedRequest) -> FileShareGrant:
    """Check a Prosody ``mod_http_file_share`` (external mode) JWT against the request;
    return its ``sub`` and ``expires`` claims.

    Claims ``slot``, ``filename``, ``filesize`` and ``exp`` are required and must
    match; ``filetype`` must match the request's Content-Type when both are
    present (Prosody always sets the claim, defaulting to
    application/octet-stream, but does not itself check it, so a client that
    sends no Content-Type is not refused). ``iat`` is not checked, as Prosody does
    not check it: it comes from the issuer's clock. Raises BadSignature (403).
    """
    claims = _decode_with_any(secrets, token)
    slot, _, filename = request.path.partition("/")
    expected_type = claims.get("filetype") or None
    if (
        str(claims.get("slot")) != slot
        or str(claims.get("filename")) != filename
        or str(claims.get("filesize")) != str(request.size)
        or (expected_type is not None and request.content_type and expected_type != request.content_type)
    ):
        raise BadSignature("token does not match this upload", code="TOKEN_MISMATCH")
    return _grant(claims)


MAX_UPLOADER_LENGTH = 255  # upload_tasks.uploader


def _grant(claims: Mapping[str, object]) -> FileShareGrant:
    """The ``sub`` and ``expires`` claims; BadSignature (403 INVALID_CLAIM) when malformed."""
    sub, expires = claims.get("sub"), claims.get("expires")
    if sub is not None and (not isinstance(sub, str) or not 0 < len(sub) <= MAX_UPLOADER_LENGTH):
        raise BadSignature("the token's sub claim is not a JID", code="INVALID_CLAIM")
    if expires is None:
        return FileShareGrant(sub, None)
    if isinstance(expires, bool) or not isinstance(expires, int) or not 0 <= expires <= _LATEST:
        raise BadSignature("the token's expires claim is not a time", code="INVALID_CLAIM")
    return FileShareGrant(sub, datetime.fromtimestamp(expires, UTC))


_LATEST = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime holds


def _decode_with_any(secrets: Iterable[str], token: str) -> dict[str, object]:
    for secret in secrets:
        try:
            # Prosody stamps ``iat`` with its own clock and itself checks only ``exp``;
            # PyJWT would refuse an ``iat`` in our future, i.e. every fresh token from
            # an issuer whose clock runs even a second ahead of ours.
            claims: dict[str, object] = jwt.decode(
                token, secret, algorithms=["HS256"], options={"require": ["exp"], "verify_iat": False}
            )
            return claims
        except jwt.ExpiredSignatureError:
            raise BadSignature("token expired", code="SIGNATURE_EXPIRED") from None
        except jwt.InvalidTokenError:
            continue
    raise BadSignature("invalid token")


def split_request_path(raw_uri: str, base_path: str, *, max_length: int) -> tuple[str, str]:
    """Decode the raw request target into (full path, slot path) the way issuers sign them.

    ``unquote`` (never ``unquote_plus``: ``+`` is literal), strict UTF-8, so
    upper- and lower-case hex escapes decode alike. Raises BadPath (400) for
    anything ``validate_path`` refuses.
    """
    raw = raw_uri.split("?", 1)[0]
    if not raw.startswith("/"):  # absolute-form request target
        raw = "/" + raw.split("://", 1)[-1].partition("/")[2]
    try:
        full = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise BadPath("path is not valid UTF-8") from None
    if not full.startswith(base_path):
        raise BadPath("path is outside the upload base path")
    path = full[len(base_path) :]
    validate_path(path, max_length=max_length)
    return full, path


def validate_path(path: str, *, max_length: int) -> None:
    if len(path.encode("utf-8")) > max_length:
        raise BadPath("path too long")
    if "\0" in path or "\\" in path or has_bidi_control(path):
        raise BadPath("path contains a forbidden character")
    segments = path.split("/")
    if len(segments) < 2:
        raise BadPath("path must be slot/filename")
    if any(segment in ("", ".", "..") for segment in segments):
        raise BadPath("path has an empty, '.' or '..' segment")


def extension_allowed(filename: str, allowed: Iterable[str]) -> bool:
    """True when ``allowed`` is empty or ``filename`` ends with one of its extensions
    (case-insensitive; entries with or without the leading dot)."""
    wanted = [f".{ext.lower().lstrip('.')}" for ext in allowed]
    return not wanted or filename.lower().endswith(tuple(wanted))


def signed_query(
    secret: str, protocol: str, request: SignedRequest, *, expires: int = 0, signed_path: str = "relative"
) -> dict[str, str]:
    """The query parameters an issuer would put on the slot URL (what ``hmacfs sign-url`` prints)."""
    stamp = str(expires) if protocol == "v3" else ""
    query = {protocol: sign(secret, message(protocol, request, expires=stamp, signed_path=signed_path))}
    if protocol == "v3":
        query["expires"] = stamp
    return query
