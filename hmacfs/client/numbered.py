"""Numbered chunks (Drive API, chunked API) sent over parallel connections.

Each worker thread has its own connection and its own read buffer, takes the
next missing chunk index, reads and hashes it, and sends it until the server
has it. A fatal error in one worker stops the others after their current chunk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hmacfs.client.errors import ClientError
from hmacfs.client.job import UploadJob
from hmacfs.client.link import Transient
from hmacfs.client.reading import PieceReader, sha256_b64
from hmacfs.client.sizing import ChunkSizer

# (index, body, base64 SHA-256, progress callback) -> None; raises Transient or ClientError
SendChunk = Callable[[int, memoryview, str, Callable[[int], None]], None]


@dataclass(frozen=True)
class Plan:
    chunk_size: int
    count: int
    missing: list[int]


def send_chunks(job: UploadJob, plan: Plan, send: SendChunk, sizer: ChunkSizer) -> None:
    """Send every chunk in ``plan.missing`` with ``job.options.parallel`` workers."""
    pending = list(reversed(plan.missing))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def take() -> int | None:
        with lock:
            return None if failures or not pending else pending.pop()

    def worker() -> None:
        reader = PieceReader(job.file.path, plan.chunk_size)
        try:
            while (index := take()) is not None:
                _send_one(job, plan, reader, index, (send, sizer))
        except BaseException as exc:  # handed to the caller's thread
            with lock:
                failures.append(exc)
        finally:
            job.link.connection().close()
            reader.close()

    streams = max(1, min(job.options.parallel, len(plan.missing)))
    threads = [threading.Thread(target=worker, name=f"hmacfs-chunk-{n}", daemon=True) for n in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def _send_one(
    job: UploadJob, plan: Plan, reader: PieceReader, index: int, how: tuple[SendChunk, ChunkSizer]
) -> None:
    send, sizer = how
    start = index * plan.chunk_size
    view = reader.read(start, min(plan.chunk_size, job.file.size - start))
    digest = sha256_b64(view)

    def once() -> None:
        sent = 0

        def count(n: int) -> None:
            nonlocal sent
            sent += n
            job.advance(n)

        began = time.monotonic()
        try:
            send(index, view, digest, count)
        except (Transient, ClientError):
            job.advance(-sent)
            raise
        sizer.observe(len(view), time.monotonic() - began)

    job.link.retrying(once, f"chunk {index}", job.label)
