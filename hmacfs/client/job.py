"""What every protocol's uploader shares: the file, its saved state, the result."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from typing import Any

from hmacfs.client.link import Link
from hmacfs.client.state import LocalFile, StateStore, UploadState


@dataclass(frozen=True)
class UploadOptions:
    protocol: str = "tus"  # tus | drive | chunked
    parallel: int = 4  # chunk streams (Drive and chunked API)
    chunk_size: int | None = None  # None: the server's recommendation, then measured goodput


@dataclass
class UploadResult:
    file: str
    protocol: str
    location: str  # tus URL, Drive task id or chunked session id
    size: int
    resumed_from: int = 0  # bytes the server already held when this run started
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class UploadJob:
    """One file going up: its uploader reads and updates ``state``, saved after each change
    that a rerun needs."""

    link: Link
    file: LocalFile
    label: str  # how progress and events name the file
    store: StateStore
    options: UploadOptions
    state: UploadState

    @property
    def name(self) -> str:
        return self.file.path.name

    @property
    def content_type(self) -> str:
        return mimetypes.guess_type(self.name)[0] or "application/octet-stream"

    def save(self) -> None:
        self.store.save(self.state)

    def forget(self) -> None:
        """The server no longer has the saved upload (or it is done): start afresh next time."""
        self.store.drop(self.state)
        self.state.location, self.state.chunk_size = "", 0

    def event(self, kind: str, **fields: Any) -> None:
        self.link.reporter.event(kind, self.label, **fields)

    def advance(self, delta: int) -> None:
        self.link.reporter.advance(self.label, delta)
