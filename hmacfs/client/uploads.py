"""Uploading files: find or start each file's state, pick its protocol, run it."""

from __future__ import annotations

from pathlib import Path

from hmacfs.client.chunked import ChunkedUploader
from hmacfs.client.drive import DriveUploader
from hmacfs.client.errors import LocalFileError
from hmacfs.client.job import UploadJob, UploadOptions, UploadResult
from hmacfs.client.link import Link
from hmacfs.client.sizing import ChunkSizer, MiB
from hmacfs.client.state import LocalFile, StateStore, UploadState
from hmacfs.client.tus import TusUploader

PROTOCOLS = ("tus", "drive", "chunked")
# The chunk size a numbered upload asks for, learned from earlier files of this run,
# stays within the server's documented default bounds (uploads.min/max_chunk_size);
# a server with other bounds answers INVALID_CHUNK_SIZE and the client takes its default.
_NUMBERED_MIN, _NUMBERED_MAX = 256 * 1024, 16 * MiB


class Uploader:
    """Uploads files one after another over one Link; what it learns about the link's
    goodput from one file sets the chunk size the next file asks for."""

    def __init__(self, link: Link, store: StateStore, options: UploadOptions) -> None:
        if options.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}")
        self.link, self.store, self.options = link, store, options
        self.goodput: float | None = None  # bytes/s of one stream, from the last file

    def upload(self, path: Path) -> UploadResult:
        """Upload (or continue uploading) ``path``; raises ClientError subclasses."""
        try:
            file = LocalFile.open(path)
        except OSError as exc:
            raise LocalFileError(f"{path}: {exc.strerror or exc}") from exc
        server = self.link.options.server
        state = self.store.load(server, self.options.protocol, file) or UploadState(
            server, self.options.protocol, file.fingerprint, file.size, str(path.resolve())
        )
        job = UploadJob(self.link, file, str(path), self.store, self.options, state)
        sizer = ChunkSizer(self.options.chunk_size or 5 * MiB, maximum=64 * MiB)
        try:
            return self._run(job, sizer)
        finally:
            if sizer.goodput:
                self.goodput = sizer.goodput

    def _run(self, job: UploadJob, sizer: ChunkSizer) -> UploadResult:
        if self.options.protocol == "tus":
            return TusUploader(job).run()
        ask = self._numbered_chunk_size(sizer)
        if self.options.protocol == "drive":
            return DriveUploader(job, sizer, ask).run()
        return ChunkedUploader(job, sizer, ask).run()

    def _numbered_chunk_size(self, sizer: ChunkSizer) -> int | None:
        """An explicit ``--chunk-size``; else one from the goodput learned on an earlier file;
        else None: the server's recommendation (its create answer's chunk size)."""
        if self.options.chunk_size:
            return self.options.chunk_size
        if self.goodput is None:
            return None
        wanted = int(self.goodput * sizer.target_seconds)
        return max(_NUMBERED_MIN, min(_NUMBERED_MAX, wanted - wanted % (256 * 1024)))
