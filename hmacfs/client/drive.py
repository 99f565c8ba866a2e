"""The Drive upload-task API: create (with the file's SHA-256), parallel chunks, complete.

Chunks carry ``Content-Digest: sha-256=:…:``; the server checks each one and
the whole file's hash at completion. A rerun asks ``resume/{taskId}`` which
chunks the server is missing and sends only those.
"""

from __future__ import annotations

from typing import Any

from hmacfs.client.errors import ConflictError, NotFoundError, RejectedError
from hmacfs.client.job import UploadJob, UploadResult
from hmacfs.client.link import Transient, expect
from hmacfs.client.numbered import Plan, send_chunks
from hmacfs.client.reading import file_sha256
from hmacfs.client.sizing import ChunkSizer

API = "/api/files/upload"
_COMPLETE_ROUNDS = 3  # completion found chunks missing: send them and complete again, this often


def _ints(values: object) -> list[int]:
    return [int(v) for v in values] if isinstance(values, list) else []


class DriveUploader:
    def __init__(self, job: UploadJob, sizer: ChunkSizer, ask_chunk_size: int | None) -> None:
        self.job, self.link, self.sizer, self.ask = job, job.link, sizer, ask_chunk_size

    def _json(self, method: str, path: str, body: bytes | None, what: str) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        answer = self.link.retrying(
            lambda: expect(self.link.call(method, API + path, headers, body, stall=body is None), what, 200),
            what, self.job.label,
        )  # fmt: skip
        return answer.json()

    def run(self) -> UploadResult:
        state = self.job.state
        if not state.sha256:
            self.job.event("hashing", size=self.job.file.size)
            state.sha256 = file_sha256(self.job.file.path)
        plan = self._resume() if state.location else None
        resumed = 0
        if plan is None:
            created = self._create()
            if isinstance(created, UploadResult):
                return created
            plan = created
        else:
            resumed = self.job.file.size - self._missing_bytes(plan)
            self.job.event("resumed", offset=resumed, location=state.location)
        self.job.link.reporter.start(
            self.job.label, self.job.file.size, self.job.file.size - self._missing_bytes(plan)
        )
        file = self._send_and_complete(plan)
        location = state.location  # forget() clears it
        self.job.forget()
        return UploadResult(self.job.label, "drive", location, self.job.file.size, resumed, file)

    def _missing_bytes(self, plan: Plan) -> int:
        last = plan.count - 1
        tail = self.job.file.size - last * plan.chunk_size
        return sum(tail if index == last else plan.chunk_size for index in plan.missing)

    def _resume(self) -> Plan | None:
        try:
            found = self._json("GET", f"/resume/{self.job.state.location}", None, "Drive resume")
        except NotFoundError:
            self.job.event("restart", reason="the server no longer has the saved upload")
            self.job.forget()
            return None
        return Plan(int(found["chunkSize"]), int(found["chunksCount"]), _ints(found.get("missingChunks")))

    def _create(self) -> Plan | UploadResult:
        import json

        body: dict[str, Any] = {
            "fileName": self.job.name, "fileSize": self.job.file.size, "contentType": self.job.content_type,
            "hash": self.job.state.sha256,
        }  # fmt: skip
        if self.ask:
            body["chunkSize"] = self.ask
        try:
            found = self._json("POST", "/create", json.dumps(body).encode(), "Drive create")
        except RejectedError as exc:
            if exc.code != "INVALID_CHUNK_SIZE" or "chunkSize" not in body:
                raise
            del body["chunkSize"]  # outside the server's bounds: take its recommendation
            found = self._json("POST", "/create", json.dumps(body).encode(), "Drive create")
        if found.get("fileExists"):
            self.job.event("exists", stored=found.get("file"))
            return UploadResult(self.job.label, "drive", "", self.job.file.size, self.job.file.size,
                                {"file": found.get("file"), "deduplicated": True})  # fmt: skip
        self.job.state.location, self.job.state.chunk_size = str(found["taskId"]), int(found["chunkSize"])
        self.job.save()
        count = int(found["chunksCount"])
        return Plan(self.job.state.chunk_size, count, list(range(count)))

    def _send_chunk(self, index: int, view: memoryview, digest: str, count: Any) -> None:
        headers = {"Content-Type": "application/octet-stream", "Content-Digest": f"sha-256=:{digest}:"}
        path = f"{API}/chunk/{self.job.state.location}/{index}"
        answer = self.link.call("POST", path, headers, view, on_sent=count)
        if answer.status == 409 and answer.code == "CHUNK_EXISTS":
            return  # an earlier attempt landed: the server has these bytes
        if answer.status == 400 and answer.code == "CHECKSUM_MISMATCH":
            raise Transient(answer.describe(), answer)  # damaged on the way: send again
        expect(answer, f"chunk {index}", 200)

    def _send_and_complete(self, plan: Plan) -> dict[str, Any]:
        for _ in range(_COMPLETE_ROUNDS):
            send_chunks(self.job, plan, self._send_chunk, self.sizer)
            try:
                return self._json("POST", f"/complete/{self.job.state.location}", b"", "Drive complete")
            except ConflictError as exc:
                if exc.code != "UPLOAD_INCOMPLETE":
                    raise
            resumed = self._resume()
            if resumed is None:
                raise ConflictError("Drive complete: the server lost the upload", code="UPLOAD_NOT_FOUND")
            plan = resumed
        raise ConflictError(
            "Drive complete: chunks still missing after resending them", code="UPLOAD_INCOMPLETE"
        )
