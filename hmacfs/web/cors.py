"""CORS for every browser-facing API, from ``[server] cors_allowed_origins``.

flask-cors answers preflights and decorates the responses (errors included) of
the Drive API, tus, the chunked API, tasks, downloads and multipart uploads.
XEP-0363 slot URLs keep their Prosody-shaped answers but decide with
:func:`allowed_origin` over both lists, and ``/ws`` checks the handshake's
``Origin`` with :func:`origin_permitted`: browsers apply no CORS to WebSockets,
so the server must refuse a foreign page itself. An origin not listed gets no
CORS header at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask
from flask_cors import CORS

from hmacfs.config import Settings

# Paths of the browser-facing APIs (regular expressions matched from the start of the path).
API_PATHS = (
    r"/api/.*",
    r"/drive/.*",
    r"/files/.*",
    r"/upload/chunked$",
    r"/chunked-upload$",
    r"/upload/status$",
    r"/upload-status$",
    r"/upload$",
    r"/download/.*",
)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Every request header a browser client of these APIs sends (tus, Drive, chunked, downloads).
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "Content-Digest",
    "Hmacfs-Client-Id",
    "Hmacfs-Network",
    "If-Modified-Since",
    "If-None-Match",
    "If-Range",
    "Range",
    "Tus-Resumable",
    "Upload-Checksum",
    "Upload-Concat",
    "Upload-Defer-Length",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "X-Chunk-Number",
    "X-Chunk-SHA256",
    "X-Chunk-Size",
    "X-File-Password",
    "X-Filename",
    "X-HTTP-Method-Override",
    "X-Requested-With",
    "X-Total-Size",
    "X-Upload-Session-ID",
)
# Response headers a page's script may read (beyond the CORS-safelisted ones).
EXPOSED_HEADERS = (
    "Accept-Ranges",
    "Content-Disposition",
    "Content-Length",
    "Content-Range",
    "ETag",
    "Hmacfs-Buffer-Size",
    "Hmacfs-Chunk-Size",
    "Hmacfs-File-Id",
    "Hmacfs-File-Url",
    "Location",
    "Retry-After",
    "Tus-Checksum-Algorithm",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Resumable",
    "Tus-Version",
    "Upload-Concat",
    "Upload-Defer-Length",
    "Upload-Expires",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "X-Total",
)
PREFLIGHT_MAX_AGE = 86400


def configure_cors(app: Flask, settings: Settings) -> None:
    """Send CORS headers on the API paths for ``[server] cors_allowed_origins``; none if empty."""
    origins = settings.server.cors_allowed_origins
    if not origins:
        return
    CORS(
        app,
        resources={path: {} for path in API_PATHS},
        origins="*" if "*" in origins else list(origins),
        methods=list(METHODS),
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        max_age=PREFLIGHT_MAX_AGE,
        send_wildcard="*" in origins,
        vary_header=True,
    )


def allowed_origin(origins: Iterable[str], origin: str) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``origin``: ``"*"``, the origin, or None."""
    listed = tuple(origins)
    if "*" in listed:
        return "*"
    wanted = origin.casefold()
    return origin if any(item.casefold() == wanted for item in listed) else None


def origin_permitted(origin: str | None, own_origins: Iterable[str], settings: Settings) -> bool:
    """Whether a request with this ``Origin`` may proceed: none (not a browser), our own, or listed."""
    if origin is None:
        return True
    own = {_normalised(item) for item in own_origins if item}
    if _normalised(origin) in own:
        return True
    return allowed_origin(settings.server.cors_allowed_origins, origin) is not None


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL ("" when it has none)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _normalised(origin: str) -> str:
    return origin.rstrip("/").casefold()
