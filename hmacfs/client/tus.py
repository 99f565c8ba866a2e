"""tus 1.0 uploads: creation, HEAD to learn the offset, PATCHes with ``Upload-Checksum``.

PATCH sizes are free in tus (docs/adaptive.md, "Chunk size"): the first one
is the server's ``Hmacfs-Chunk-Size`` (on the creation answer, or on the HEAD
of a resumed upload), later ones follow the measured goodput (``ChunkSizer``),
and after a network change the size starts again from what
``GET /api/network/profile`` recommends for the new network. After any failed
PATCH the next one starts where the server's HEAD says, never where the client
thinks it got to. The next PATCH is read and hashed by a helper thread while
the current one is on the wire.
"""

from __future__ import annotations

import base64
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from urllib.parse import urlsplit

from hmacfs.client.errors import Answer, ConflictError, NotFoundError, error_for
from hmacfs.client.job import UploadJob, UploadResult
from hmacfs.client.link import Transient, expect
from hmacfs.client.reading import PieceReader, sha256_b64
from hmacfs.client.sizing import ChunkSizer, MiB

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK_SIZE_HEADER = "Hmacfs-Chunk-Size"  # the server's recommended PATCH size (POST and HEAD)
PROFILE = "/api/network/profile"
FILE_ID_HEADER, FILE_URL_HEADER = "Hmacfs-File-Id", "Hmacfs-File-Url"  # on the last PATCH's answer
DEFAULT_PATCH = 8 * MiB
MAX_PATCH = 32 * MiB  # two such buffers are held (one sending, one being read)

Piece = tuple[int, memoryview, str]  # offset, bytes, base64 SHA-256


def _metadata(job: UploadJob) -> str:
    pairs = {"filename": job.name, "filetype": job.content_type}
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())


class TusUploader:
    def __init__(self, job: UploadJob) -> None:
        self.job, self.link = job, job.link
        fixed = job.options.chunk_size  # --chunk-size: every PATCH that size, nothing adapts
        first = fixed or job.state.chunk_size or DEFAULT_PATCH
        self.sizer = (
            ChunkSizer(first, minimum=fixed, maximum=fixed) if fixed else ChunkSizer(first, maximum=MAX_PATCH)
        )
        self.readers = [PieceReader(job.file.path, first), PieceReader(job.file.path, first)]
        self.turn = 0
        self.resync = False
        self.changes = self.link.watchdog.network_changes  # network changes already followed
        self.file: dict[str, object] = {}  # the stored file (id, url), once the server says

    def run(self) -> UploadResult:
        try:
            offset = self._resume() if self.job.state.location else None
            if offset is None:
                offset = self._create()
                resumed = 0
            else:
                resumed = offset
                self.job.event("resumed", offset=offset, location=self.job.state.location)
            self.job.link.reporter.start(self.job.label, self.job.file.size, offset)
            self._send_from(offset)
        finally:
            for reader in self.readers:
                reader.close()
        location = self.job.state.location
        self.job.forget()
        return UploadResult(self.job.label, "tus", location, self.job.file.size, resumed, self.file)

    @property
    def _path(self) -> str:
        return urlsplit(self.job.state.location).path

    def _resume(self) -> int | None:
        """The server's offset of the saved upload; None when the server has forgotten it."""
        try:
            return self._head(recommend=True)
        except NotFoundError:
            self.job.event("restart", reason="the server no longer has the saved upload")
            self.job.forget()
            return None

    def _head(self, recommend: bool = False) -> int:
        """The server's offset; with ``recommend``, also follow its Hmacfs-Chunk-Size."""
        answer = self.link.retrying(
            lambda: expect(self.link.call("HEAD", self._path, TUS), "tus HEAD", 200),
            "tus HEAD",
            self.job.label,
        )
        if recommend:
            self._follow(answer.header(CHUNK_SIZE_HEADER), "HEAD")
        self._note_file(answer)
        return int(answer.header("Upload-Offset") or 0)

    def _note_file(self, answer: Answer) -> None:
        """A complete upload's answers name the stored file (hmacfs; other servers do not)."""
        if answer.header(FILE_ID_HEADER):
            self.file = {"id": answer.header(FILE_ID_HEADER), "url": answer.header(FILE_URL_HEADER)}

    def _follow(self, size: object, source: str) -> None:
        """Start the PATCH size over from the server's recommendation, unless the user
        chose a size (``--chunk-size``) or the server recommends none."""
        text = str(size or "")
        if self.job.options.chunk_size or not text.isdigit() or int(text) <= 0:
            return
        self.sizer.restart(int(text))
        self.job.event("chunk_size", size=self.sizer.next_size(), recommended=int(text), source=source)

    def _follow_profile(self) -> None:
        """After a network change: the server's recommendation for the new network.
        Best effort (one attempt): a server without the endpoint leaves the size alone."""
        self.changes = self.link.watchdog.network_changes
        try:
            answer: Answer = self.link.call("GET", f"{PROFILE}?fileSize={self.job.file.size}")
        except Transient:
            return
        if answer.status != 200:
            return
        found = answer.json()
        self.job.event("profile", network_class=found.get("networkClass"), source=found.get("source"))
        self._follow(found.get("chunkSize"), "profile")

    def _create(self) -> int:
        headers = {**TUS, "Upload-Length": str(self.job.file.size), "Upload-Metadata": _metadata(self.job)}
        answer = self.link.retrying(
            lambda: expect(self.link.call("POST", "/files/", headers), "tus create", 201), "tus create",
            self.job.label,
        )  # fmt: skip
        location = answer.header("Location")
        if not location:
            raise ConflictError("tus create: the server sent no Location")
        self.job.state.location = location
        self.job.save()
        self._follow(answer.header(CHUNK_SIZE_HEADER), "create")
        self._note_file(answer)
        return int(answer.header("Upload-Offset") or 0)

    def _send_from(self, offset: int) -> None:
        size = self.job.file.size
        with ThreadPoolExecutor(1, thread_name_prefix="hmacfs-read") as pool:
            ahead: Future[Piece] | None = None
            while offset < size:
                ready = ahead is not None and ahead.result()[0] == offset
                piece = ahead.result() if ahead is not None and ready else self._read(offset)
                after = piece[0] + len(piece[1])
                ahead = pool.submit(self._read, after) if after < size else None
                offset = self.link.retrying(partial(self._patch, piece), "tus PATCH", self.job.label)

    def _read(self, offset: int) -> Piece:
        length = min(self.sizer.next_size(), self.job.file.size - offset)
        self.turn ^= 1
        view = self.readers[self.turn].read(offset, length)
        return offset, view, sha256_b64(view)

    def _trimmed(self, view: memoryview, digest: str) -> tuple[memoryview, str]:
        """The piece cut to the size now wanted: a piece read for the old link, resent
        whole over a slow new one, would keep the first acknowledgement waiting."""
        wanted = self.sizer.next_size()
        if len(view) <= wanted:
            return view, digest
        return view[:wanted], sha256_b64(view[:wanted])

    def _patch(self, piece: Piece) -> int:
        """Send one piece; returns the server's new offset. A failure re-reads the offset
        (HEAD) and raises Transient so the caller waits and sends from there."""
        offset, view, digest = piece
        if self.resync:  # the last attempt failed: continue where the server says
            self.resync = False
            if self.link.watchdog.network_changes != self.changes:
                self._follow_profile()
            server = self._head()
            if server != offset:
                self.job.advance(server - offset)
                return server
            view, digest = self._trimmed(view, digest)
        headers = {
            **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": f"sha256 {digest}",
        }  # fmt: skip
        sent = 0

        def count(n: int) -> None:
            nonlocal sent
            sent += n
            self.job.advance(n)

        started = time.monotonic()
        try:
            answer = self.link.call("PATCH", self._path, headers, view, on_sent=count)
        except Transient:
            self.job.advance(-sent)
            self.sizer.failed()
            self.resync = True
            raise
        if answer.status == 204:
            self.sizer.observe(len(view), time.monotonic() - started)
            self._note_file(answer)
            return int(answer.header("Upload-Offset") or offset + len(view))
        self.job.advance(-sent)
        if answer.status == 409:  # the offset moved (an earlier PATCH landed after all)
            server = self._head()
            self.job.advance(server - offset)
            return server
        if answer.status == 460:  # damaged on the way (or the file changed): send again
            raise Transient(answer.describe(), answer)
        raise error_for(answer, f"tus PATCH at {offset}")
