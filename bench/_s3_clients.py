"""Clients of the s3 benchmark: hmacfs's Drive, tus and GET over raw ``http.client``,
and the peer, boto3 straight to the S3 store, all with one part size.

Every upload sends ``Payload`` parts: one random block stamped with a label and
the part's index, so each upload has new content (nothing deduplicates) and no
size costs memory.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from bench._upload_clients import call, connect, in_parallel

MiB = 1024 * 1024
BLOCK = MiB  # send and read block of every client

_BUFFER = threading.local()  # each sending thread's part buffer


@dataclass(frozen=True)
class Payload:
    """``size`` bytes in ``part``-byte parts (the last may be shorter)."""

    size: int
    part: int
    seed: bytes
    sha256: str = ""

    @classmethod
    def make(cls, size: int, part: int, seed: bytes) -> Payload:
        """New content over the shared ``seed`` (a random label), its SHA-256 computed."""
        label = uuid.uuid4().bytes
        probe = cls(size, part, label + seed[len(label) :])
        hasher = hashlib.sha256()
        for index in range(probe.count):
            hasher.update(probe.chunk(index))
        return replace(probe, sha256=hasher.hexdigest())

    @property
    def count(self) -> int:
        return -(-self.size // self.part)

    def chunk(self, index: int) -> memoryview:
        """Part ``index``: a view of this thread's buffer, valid until its next call."""
        if getattr(_BUFFER, "seed", None) is not self.seed:
            _BUFFER.seed, _BUFFER.data = self.seed, bytearray(self.seed)
        data: bytearray = _BUFFER.data
        data[16:24] = index.to_bytes(8, "big")
        return memoryview(data)[: min(self.part, self.size - index * self.part)]


def seed(part: int) -> bytes:
    return os.urandom(part)


def _call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """``call``, with any answer of 300 or more raised as a failed round."""
    status, answer, data = call(conn, method, path, body, headers)
    if status >= 300:
        raise RuntimeError(f"{method} {path}: HTTP {status}: {data[:300]!r}")
    return status, answer, data


@dataclass(frozen=True)
class Uploaded:
    file_id: str
    complete: float  # seconds of the complete request (hash check and assembly)


def drive(base: str, auth: dict[str, str], payload: Payload, streams: int) -> Uploaded:
    """Drive create, parts over ``streams`` connections, complete (hash checked)."""
    conn = connect(base)
    body = {"fileName": "bench.bin", "fileSize": payload.size, "contentType": "application/octet-stream",
            "chunkSize": payload.part, "hash": payload.sha256}  # fmt: skip
    _, _, data = _call(conn, "POST", "/api/files/upload/create", json.dumps(body),
                       {**auth, "Content-Type": "application/json"})  # fmt: skip
    created = json.loads(data)
    if created["chunkSize"] != payload.part:
        raise RuntimeError(f"the server chose {created['chunkSize']}-byte chunks")
    task, headers = created["taskId"], {**auth, "Content-Type": "application/octet-stream"}
    path = f"/api/files/upload/chunk/{task}/"
    in_parallel(
        streams, payload.count, lambda c, i: _call(c, "POST", f"{path}{i}", payload.chunk(i), headers), base
    )
    started = time.perf_counter()
    _, _, data = _call(conn, "POST", f"/api/files/upload/complete/{task}", None, auth)
    complete = time.perf_counter() - started
    conn.close()
    done = json.loads(data)
    if done["hash"] != payload.sha256:
        raise RuntimeError("hash differs")
    return Uploaded(done["id"], complete)


def tus(base: str, auth: dict[str, str], payload: Payload) -> float:
    """tus creation, then one PATCH per part on one connection; the seconds of the last
    PATCH (its part, the hash check and the assembly)."""
    conn = connect(base)
    tus_headers = {**auth, "Tus-Resumable": "1.0.0"}
    _, answer, _ = _call(conn, "POST", "/files/", None, {**tus_headers, "Upload-Length": str(payload.size)})
    path = urlsplit(answer["location"]).path
    for index in range(payload.count):
        headers = {**tus_headers, "Upload-Offset": str(index * payload.part),
                   "Content-Type": "application/offset+octet-stream"}  # fmt: skip
        started = time.perf_counter()
        _call(conn, "PATCH", path, payload.chunk(index), headers)
    conn.close()
    return time.perf_counter() - started


def get(base: str, path: str, auth: dict[str, str], size: int) -> None:
    """One GET of the whole file, read in 1 MiB blocks and dropped."""
    conn = connect(base)
    conn.request("GET", path, headers=auth)
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {response.status}")
    _drain(response.read, size)
    conn.close()


def peer_put(client: Any, bucket: str, key: str, payload: Payload, streams: int) -> None:
    """A direct boto3 multipart upload: create, parts over ``streams`` threads, complete."""
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags: dict[int, str] = {}

    def send(_: object, index: int) -> None:
        sent = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=index + 1, Body=bytes(payload.chunk(index))
        )
        etags[index + 1] = sent["ETag"]

    in_parallel(streams, payload.count, send, None)
    parts = [{"PartNumber": number, "ETag": etag} for number, etag in sorted(etags.items())]
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )


def peer_get(client: Any, bucket: str, key: str, size: int) -> None:
    """A direct boto3 GET of the whole object, read in 1 MiB blocks and dropped."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    _drain(body.read, size)
    body.close()


def _drain(read: Callable[[int], bytes], size: int) -> None:
    received = 0
    while block := read(BLOCK):
        received += len(block)
    if received != size:
        raise RuntimeError(f"read {received} bytes of {size}")


def timed(run: Callable[[], object]) -> tuple[float, object]:
    """Seconds ``run`` took, and what it returned."""
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


SMALL = 4096  # a chat picture's thumbnail, a voice message's first second
SMALL_COUNT = 200  # requests per timed run of a small-file contender


def small_puts(base: str, urls: list[str], bodies: list[bytes]) -> None:
    """One XEP-0363 PUT per signed URL, one after another on one keep-alive connection."""
    conn = connect(base)
    for url, body in zip(urls, bodies, strict=True):
        parts = urlsplit(url)
        _call(conn, "PUT", f"{parts.path}?{parts.query}", body, {"Content-Type": "application/octet-stream"})
    conn.close()


def small_gets(base: str, path: str, auth: dict[str, str], count: int) -> None:
    """``count`` GETs of one small file on one keep-alive connection."""
    conn = connect(base)
    for _ in range(count):
        _call(conn, "GET", path, None, auth)
    conn.close()


def peer_small_puts(client: Any, bucket: str, keys: list[str], bodies: list[bytes]) -> None:
    """One boto3 PutObject per key, one after another."""
    for key, body in zip(keys, bodies, strict=True):
        client.put_object(Bucket=bucket, Key=key, Body=body)


def peer_small_gets(client: Any, bucket: str, key: str, count: int) -> None:
    """``count`` boto3 GetObjects of one small object, one after another."""
    for _ in range(count):
        client.get_object(Bucket=bucket, Key=key)["Body"].read()
