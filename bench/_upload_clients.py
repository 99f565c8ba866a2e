"""HTTP clients for the resumable benchmark: raw http.client with 1 MiB send blocks,
the same for every contender so only the server side differs."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MiB = 1024 * 1024
CHUNK = 5 * MiB
BLOCK = 1 * MiB


_BUFFER = threading.local()  # each sending thread's chunk buffer (Source.chunk)
_STAMP = 32  # the most bytes a stamp covers


@dataclass(frozen=True)
class Source:
    """Upload content: a fixed random block stamped per chunk, so any size costs no memory."""

    size: int
    seed: bytes
    label: bytes = b""
    sha256: str = ""

    @classmethod
    def make(cls, size: int, label: bytes = b"", seed: bytes | None = None) -> Source:
        probe = cls(size, seed or os.urandom(CHUNK), label)
        hasher = hashlib.sha256()
        for index in range(-(-size // CHUNK)):
            hasher.update(probe.chunk(index))
        return replace(probe, sha256=hasher.hexdigest())

    def chunk(self, index: int) -> memoryview:
        """Chunk ``index``: the seed with the label and index stamped over its start.

        A view of this thread's buffer, valid until the thread's next call: building
        each 5 MiB chunk anew cost the client two copies per chunk, a cost the
        one-request contenders paid per block too but overlapped with the server's
        work, and the chunk-per-request ones paid between requests."""
        start = index * CHUNK
        length = min(CHUNK, self.size - start)
        if getattr(_BUFFER, "seed", None) is not self.seed:
            _BUFFER.seed, _BUFFER.data = self.seed, bytearray(self.seed)
        data: bytearray = _BUFFER.data
        data[:_STAMP] = self.seed[:_STAMP]
        stamp = self.label[:24] + index.to_bytes(8, "big")
        data[: len(stamp)] = stamp
        return memoryview(data)[:length]

    def reader(self) -> _Stream:
        return _Stream(self)


class _Stream:
    """A file-like body that yields the chunks in order (http.client reads it in blocks)."""

    def __init__(self, source: Source) -> None:
        self.source, self.index, self.pending = source, 0, memoryview(b"")

    def read(self, size: int = -1) -> memoryview:
        if not self.pending:
            if self.index * CHUNK >= self.source.size:
                return memoryview(b"")
            self.pending = self.source.chunk(self.index)
            self.index += 1
        size = len(self.pending) if size < 0 else size
        data, self.pending = self.pending[:size], self.pending[size:]
        return data  # sent before the next read touches the buffer


def connect(base: str) -> http.client.HTTPConnection:
    parts = urlsplit(base)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600, blocksize=BLOCK)


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def _check(status: int, expected: int, data: bytes, what: str) -> None:
    if status != expected:
        raise RuntimeError(f"{what}: HTTP {status}: {data[:300]!r}")


def tus_single(base: str, auth: dict[str, str], source: Source) -> float:
    """The whole file in one tus creation-with-upload request; seconds until the file exists."""
    conn = connect(base)
    headers = {
        **auth,
        "Tus-Resumable": "1.0.0",
        "Upload-Length": str(source.size),
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(source.size),
    }
    started = time.perf_counter()
    status, answer, data = call(conn, "POST", "/files/", source.reader(), headers)
    elapsed = time.perf_counter() - started
    _check(status, 201, data, "tus single")
    if answer.get("upload-offset") != str(source.size):
        raise RuntimeError(f"tus single stored {answer.get('upload-offset')} of {source.size}")
    conn.close()
    return elapsed


def tus_patches(base: str, auth: dict[str, str], source: Source) -> float:
    """tus creation, then one 5 MiB PATCH after another."""
    conn = connect(base)
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    started = time.perf_counter()
    status, answer, data = call(conn, "POST", "/files/", None, {**tus, "Upload-Length": str(source.size)})
    _check(status, 201, data, "tus create")
    path = urlsplit(answer["location"]).path
    for index in range(-(-source.size // CHUNK)):
        body = source.chunk(index)
        headers = {
            **tus,
            "Upload-Offset": str(index * CHUNK),
            "Content-Type": "application/offset+octet-stream",
        }
        status, _, data = call(conn, "PATCH", path, body, headers)
        _check(status, 204, data, "tus patch")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


@dataclass
class DriveTimes:
    total: float
    complete: float


def drive_upload(base: str, auth: dict[str, str], source: Source, streams: int) -> DriveTimes:
    """Drive create, chunks over ``streams`` connections in parallel, then complete (hash checked)."""
    conn = connect(base)
    json_headers = {**auth, "Content-Type": "application/json"}
    body = json.dumps(
        {
            "fileName": "bench.bin",
            "fileSize": source.size,
            "contentType": "application/octet-stream",
            "chunkSize": CHUNK,
            "hash": source.sha256,
        }
    )
    started = time.perf_counter()
    status, _, data = call(conn, "POST", "/api/files/upload/create", body, json_headers)
    _check(status, 200, data, "drive create")
    created = json.loads(data)
    task, count = created["taskId"], created["chunksCount"]
    in_parallel(streams, count, lambda c, i: _send_chunk(c, auth, task, i, source.chunk(i)), base)
    before_complete = time.perf_counter()
    status, _, data = call(conn, "POST", f"/api/files/upload/complete/{task}", None, auth)
    _check(status, 200, data, "drive complete")
    if json.loads(data)["hash"] != source.sha256:
        raise RuntimeError("hash differs")
    done = time.perf_counter()
    conn.close()
    return DriveTimes(done - started, done - before_complete)


def _send_chunk(
    conn: http.client.HTTPConnection, auth: dict[str, str], task: str, index: int, body: memoryview
) -> None:
    headers = {**auth, "Content-Type": "application/octet-stream"}
    status, _, data = call(conn, "POST", f"/api/files/upload/chunk/{task}/{index}", body, headers)
    _check(status, 200, data, f"chunk {index}")


def in_parallel(streams: int, count: int, send: Callable[[Any, int], object], base: str | None) -> None:
    """``send(conn, index)`` for every index over ``streams`` threads, each with its own
    connection to ``base`` (None: no connection); the first error is raised."""
    errors: list[BaseException] = []
    lock = threading.Lock()
    pending = list(range(count))

    def worker() -> None:
        conn = connect(base) if base else None
        try:
            while True:
                with lock:
                    if not pending or errors:
                        return
                    index = pending.pop(0)
                send(conn, index)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
        finally:
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=worker) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    if errors:
        raise errors[0]


def xep_put(base: str, secret: str, source: Source) -> float:
    """One XEP-0363 signed PUT of the whole file (protocol v); seconds until the 201."""
    path = f"{uuid.uuid4().hex}/file.bin"
    signature = hmac.new(secret.encode(), f"{path} {source.size}".encode(), hashlib.sha256).hexdigest()
    conn = connect(base)
    started = time.perf_counter()
    status, _, data = call(
        conn, "PUT", f"/upload/{path}?v={signature}", source.reader(), {"Content-Length": str(source.size)}
    )
    elapsed = time.perf_counter() - started
    _check(status, 201, data, "xep PUT")
    conn.close()
    return elapsed


def nginx_put(base: str, source: Source, name: str) -> float:
    conn = connect(base)
    started = time.perf_counter()
    status, _, _ = call(conn, "PUT", f"/{name}", source.reader(), {"Content-Length": str(source.size)})
    elapsed = time.perf_counter() - started
    if status not in (201, 204):
        raise RuntimeError(f"nginx PUT: HTTP {status}")
    # Untimed: free the file's page cache as hmacfs frees a deduplicated part. Kept, the
    # next contender (always the same one: rotation keeps neighbours) wrote into pages
    # this VM had not touched yet, 2-3x slower (the single PUT, at 301 MiB/s against
    # the same upload's 456 MiB/s through tus, in the run that showed it).
    status, _, _ = call(conn, "DELETE", f"/{name}")
    if status not in (200, 204):
        raise RuntimeError(f"nginx DELETE: HTTP {status}")
    conn.close()
    return elapsed


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every descendant (gunicorn master and workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        pending.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total
