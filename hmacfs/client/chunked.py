"""The chunked session API (hmac-file-server seed): open a session, PUT numbered chunks.

The server completes the upload when its last missing chunk arrives. A
rerun asks ``/upload/status`` which chunks are missing. A chunk whose
completion failed stays recorded; sending that chunk again completes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hmacfs.client.errors import ConflictError, NotFoundError
from hmacfs.client.job import UploadJob, UploadResult
from hmacfs.client.link import Transient, expect
from hmacfs.client.numbered import Plan, send_chunks
from hmacfs.client.sizing import ChunkSizer

_ROUNDS = 3


class ChunkedUploader:
    def __init__(self, job: UploadJob, sizer: ChunkSizer, ask_chunk_size: int | None) -> None:
        self.job, self.link, self.sizer, self.ask = job, job.link, sizer, ask_chunk_size
        self.completed = False

    def run(self) -> UploadResult:
        plan = self._resume() if self.job.state.location else None
        resumed = 0
        if plan is None:
            plan = self._open()
        else:
            resumed = self.job.state.extra.get("uploaded", 0)
            self.job.event("resumed", offset=resumed, location=self.job.state.location)
        self.job.link.reporter.start(self.job.label, self.job.file.size, resumed)
        for _ in range(_ROUNDS):
            send_chunks(self.job, plan, self._send_chunk, self.sizer)
            if self.completed:
                break
            status = self._status()
            if status.get("completed"):
                break
            missing = [int(i) for i in status.get("missing_chunks") or []]
            # nothing missing but not complete: the last chunk's completion failed; resend it
            plan = Plan(plan.chunk_size, plan.count, missing or [plan.count - 1])
        else:
            raise ConflictError("chunked upload did not complete after resending its chunks")
        location = self.job.state.location
        self.job.forget()
        return UploadResult(self.job.label, "chunked", location, self.job.file.size, resumed)

    def _status(self) -> dict[str, Any]:
        path = f"/upload/status?session_id={quote(self.job.state.location)}"
        answer = self.link.retrying(
            lambda: expect(self.link.call("GET", path), "chunked status", 200),
            "chunked status",
            self.job.label,
        )
        return answer.json()

    def _resume(self) -> Plan | None:
        try:
            status = self._status()
        except NotFoundError:
            self.job.event("restart", reason="the server no longer has the saved session")
            self.job.forget()
            return None
        size = self.job.state.chunk_size
        count = -(-self.job.file.size // size)
        self.job.state.extra["uploaded"] = int(status.get("uploaded_bytes") or 0)
        missing = [] if status.get("completed") else [int(i) for i in status.get("missing_chunks") or []]
        self.completed = bool(status.get("completed"))
        return Plan(size, count, missing)

    def _open(self) -> Plan:
        headers = {"X-Filename": self.job.name, "X-Total-Size": str(self.job.file.size)}
        if self.ask:
            headers["X-Chunk-Size"] = str(self.ask)

        def once() -> dict[str, Any]:
            answer = self.link.call("POST", "/upload/chunked", headers)
            if answer.status == 400 and answer.code == "INVALID_CHUNK_SIZE" and "X-Chunk-Size" in headers:
                del headers["X-Chunk-Size"]  # outside the server's bounds: take its recommendation
                answer = self.link.call("POST", "/upload/chunked", headers)
            return expect(answer, "chunked open", 201).json()

        found = self.link.retrying(once, "chunked open", self.job.label)
        self.job.state.location, self.job.state.chunk_size = (
            str(found["session_id"]),
            int(found["chunk_size"]),
        )
        self.job.save()
        count = int(found["total_chunks"])
        return Plan(self.job.state.chunk_size, count, list(range(count)))

    def _send_chunk(self, index: int, view: memoryview, digest: str, count: Any) -> None:
        headers = {
            "X-Upload-Session-ID": self.job.state.location, "X-Chunk-Number": str(index),
            "Content-Type": "application/octet-stream", "Content-Digest": f"sha-256=:{digest}:",
        }  # fmt: skip
        answer = self.link.call("PUT", "/upload/chunked", headers, view, on_sent=count)
        if answer.status == 400 and answer.code == "CHECKSUM_MISMATCH":
            raise Transient(answer.describe(), answer)
        if answer.status == 409 and answer.code == "UPLOAD_COMPLETED":
            self.completed = True
            return
        if expect(answer, f"chunk {index}", 200).json().get("completed"):
            self.completed = True
