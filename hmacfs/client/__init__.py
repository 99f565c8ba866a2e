"""hmacfs's own client: resumable uploads (tus, Drive API, chunked API) and downloads.

Speaks only the public HTTP APIs. ``hmacfs upload`` and ``hmacfs download``
(``hmacfs.client.commands``) are thin commands over ``Uploader`` and
``Downloader``; see docs/client.md.
"""

from __future__ import annotations

from hmacfs.client.backoff import Backoff
from hmacfs.client.download import Downloader, DownloadResult
from hmacfs.client.errors import ClientError
from hmacfs.client.job import UploadOptions, UploadResult
from hmacfs.client.link import Link, LinkOptions
from hmacfs.client.state import StateStore
from hmacfs.client.uploads import Uploader

__all__ = [
    "Backoff",
    "ClientError",
    "DownloadResult",
    "Downloader",
    "Link",
    "LinkOptions",
    "StateStore",
    "UploadOptions",
    "UploadResult",
    "Uploader",
]
