"""Building the download response for a stored file: validators, conditional
requests, ranges, and the body (kernel sendfile, read loop, X-Accel-Redirect, or a
redirect to a presigned URL of an object store).

Sendfile and X-Accel-Redirect need the store's files (``PathBacked``); with any
other store the bytes are streamed through range reads of the blob."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from flask import Request, Response

from hmacfs.config import Settings
from hmacfs.downloads.body import FileBody, Segment
from hmacfs.downloads.http import (
    ByteRange,
    content_disposition,
    etag,
    last_modified,
    not_modified,
    parse_range,
    range_applies,
    security_headers,
)
from hmacfs.errors import NotFound
from hmacfs.files import blob_store
from hmacfs.metrics import AppMetrics
from hmacfs.models import Blob, File
from hmacfs.storage import BlobStore, PathBacked, Presignable
from hmacfs.web.encrypted_download import encrypted_response


@dataclass(frozen=True)
class Download:
    """Everything needed to answer for one file, without holding a database row."""

    store: BlobStore  # over the blob's root
    storage_key: str
    name: str
    content_type: str
    size: int
    sha256: str
    modified: datetime
    encrypted: bool = False
    # Under the store's own root, the one nginx's X-Accel-Redirect location maps to (not a
    # pool's storage path, nor where a migration put it): nginx may send it.
    at_root: bool = True

    @cached_property
    def fixed_headers(self) -> dict[str, str]:
        """The headers every answer for this file carries (copy before changing). Made
        once: a Download lives in the slot cache and answers many GETs, and formatting
        the date and the disposition for each cost about 5 % of a cached 4 KiB GET."""
        return {
            "ETag": etag(self.sha256),
            "Last-Modified": last_modified(self.modified),
            "Content-Disposition": content_disposition(self.name, self.content_type),
            **security_headers(),
        }


def load_download(store: BlobStore, file: File, blob: Blob) -> Download:
    home = blob_store(store, blob.storage_root)
    return Download(
        store=home,
        at_root=home is store,
        storage_key=blob.storage_key,
        name=file.name,
        content_type=file.content_type,
        size=file.size,
        sha256=file.sha256,
        modified=file.created_at,  # UTCDateTime: always timezone-aware UTC
        encrypted=file.encrypted,
    )


def download_response(
    download: Download, request: Request, settings: Settings, metrics: AppMetrics | None
) -> Response:
    """200, 206, 304 or 416 (raised) for ``request``; HEAD gets the same headers, no body."""
    headers = dict(download.fixed_headers)
    tag = headers["ETag"]
    headers["Accept-Ranges"] = "bytes" if settings.streaming.range_requests else "none"
    if not_modified(
        request.environ.get("HTTP_IF_NONE_MATCH"),
        request.environ.get("HTTP_IF_MODIFIED_SINCE"),
        tag,
        download.modified,
    ):
        return Response(status=304, headers=headers)
    if download.encrypted:
        return encrypted_response(
            download.store,
            download.storage_key,
            request,
            size=download.size,
            content_type=download.content_type,
            headers=headers,
        )
    ranges = _requested_ranges(download, request, settings, tag)
    if _redirects(download.store, settings):
        return _redirect_response(download, settings, headers)
    if settings.streaming.x_accel_redirect and download.at_root and _path_backed(download.store):
        return _accel_response(download, settings, headers)
    return _body_response(download, request, settings, metrics=metrics, headers=headers, ranges=ranges)


_PATH_BACKED: dict[type, bool] = {}


def _path_backed(store: BlobStore) -> bool:
    """Whether ``store``'s files are local (sendfile, X-Accel-Redirect). A runtime Protocol
    check costs about 20 µs, some 4% of a small GET, so it is made once per store class."""
    kind = type(store)
    known = _PATH_BACKED.get(kind)
    if known is None:
        known = _PATH_BACKED[kind] = isinstance(store, PathBacked)
    return known


def _requested_ranges(
    download: Download, request: Request, settings: Settings, tag: str
) -> list[ByteRange] | None:
    if not settings.streaming.range_requests:
        return None
    # Read from the environ: werkzeug's header view rebuilds the WSGI key for each lookup.
    if not range_applies(request.environ.get("HTTP_IF_RANGE"), tag, download.modified):
        return None
    return parse_range(request.environ.get("HTTP_RANGE"), download.size)


def _redirects(store: BlobStore, settings: Settings) -> bool:
    return settings.storage.s3.download == "redirect" and isinstance(store, Presignable)


def _redirect_response(download: Download, settings: Settings, headers: dict[str, str]) -> Response:
    """302 to a presigned URL of the object store, which answers Range itself; the URL
    names the file's Content-Disposition and type for the store to send."""
    assert isinstance(download.store, Presignable)
    url = download.store.presigned_url(
        download.storage_key,
        expires_in=int(settings.storage.s3.presign_expiry.total_seconds()),
        filename=headers["Content-Disposition"],
        content_type=download.content_type,
    )
    kept = {name: value for name, value in headers.items() if name in ("ETag", "Last-Modified")}
    response = Response(status=302, headers={**kept, **security_headers(), "Location": url})
    response.headers["Cache-Control"] = "private, no-store"  # the URL expires
    return response


def _accel_response(download: Download, settings: Settings, headers: dict[str, str]) -> Response:
    """Hand the bytes to nginx (which answers Range itself from the internal location)."""
    prefix = settings.streaming.x_accel_prefix.rstrip("/")
    response = Response(status=200, headers=headers, content_type=download.content_type)
    response.headers["X-Accel-Redirect"] = f"{prefix}/{download.storage_key}"
    return response


def _body_response(
    download: Download,
    request: Request,
    settings: Settings,
    *,
    metrics: AppMetrics | None,
    headers: dict[str, str],
    ranges: list[ByteRange] | None,
) -> Response:
    content_type = download.content_type
    suffix = b""
    if ranges is None:
        segments = [Segment(b"", 0, download.size)]
        status = 200
    elif len(ranges) == 1:
        segments = [Segment(b"", ranges[0].start, ranges[0].length)]
        headers["Content-Range"] = ranges[0].content_range(download.size)
        status = 206
    else:
        boundary = uuid.uuid4().hex
        segments, suffix = _multipart_segments(ranges, download, boundary)
        content_type = f"multipart/byteranges; boundary={boundary}"
        status = 206
    if status == 206 and metrics is not None:
        metrics.network.range_requests_total.inc()
    length = sum(len(s.prefix) + s.length for s in segments) + len(suffix)
    try:
        # The first segment's read may start now: on an object store its GET replaces a HEAD
        # (not for a HEAD request, which reads nothing).
        reads = request.method != "HEAD" and segments[0].length > 0
        first = (segments[0].start, segments[0].length) if reads else None
        blob = download.store.open_blob(download.storage_key, first=first)
    except FileNotFoundError:  # collected after the lookup: gone, not a crash
        raise NotFound("no such file") from None
    body = FileBody(
        blob,
        segments,
        suffix,
        request.environ,
        # The kernel copies a path-backed store's file (sendfile), or an object store's
        # body from its socket (splice); any other store's bytes are read.
        use_sendfile=settings.streaming.sendfile,
        block_size=settings.performance.max_buffer_size,
        timeout=settings.timeouts.writetimeout.total_seconds(),
        on_sent=_counter(metrics),
    )
    response = Response(
        body, status=status, headers=headers, content_type=content_type, direct_passthrough=True
    )
    response.content_length = length
    return response


def _multipart_segments(
    ranges: list[ByteRange], download: Download, boundary: str
) -> tuple[list[Segment], bytes]:
    segments = []
    for index, byte_range in enumerate(ranges):
        head = (
            f"{'' if index == 0 else chr(13) + chr(10)}--{boundary}\r\n"
            f"Content-Type: {download.content_type}\r\n"
            f"Content-Range: {byte_range.content_range(download.size)}\r\n\r\n"
        )
        segments.append(Segment(head.encode("latin-1"), byte_range.start, byte_range.length))
    return segments, f"\r\n--{boundary}--\r\n".encode("latin-1")


def _counter(metrics: AppMetrics | None) -> Callable[[int], None]:
    """Count each sent segment's bytes, and its rate since the response was built."""
    if metrics is None:
        return lambda _n: None
    started = time.monotonic()

    def sent(count: int) -> None:
        metrics.download_bytes_total.inc(count)
        seconds = time.monotonic() - started
        if count >= _RATE_AFTER and seconds > 0:
            metrics.network.download_throughput.observe(count / seconds)

    return sent


_RATE_AFTER = 64 * 1024  # smaller segments say more about latency than rate
