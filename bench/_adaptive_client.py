"""One client of the adaptive bench: ``python -m bench._adaptive_client BASE CLIENT_ID SIZE COUNT``.

Runs inside the bench's network namespace (``ip netns exec``). Uploads COUNT
files of SIZE bytes with the Drive API, taking the chunk size the server
recommends, retrying a chunk whose connection was cut; prints one JSON line
per upload: seconds, bytes re-sent, chunk size, failed attempts.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import bearer

API = "/api/files/upload"
_PIECE = 64 * 1024
_DEADLINE = 600.0  # seconds per upload, then give up (every loop is bounded)


class Client:
    def __init__(self, base: str, client_id: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {**bearer(uuid.uuid4()), "Hmacfs-Client-Id": client_id}
        self.resent = 0
        self.failures = 0

    def request(self, method: str, path: str, body: bytes = b"", **extra: str) -> tuple[int, bytes]:
        """One request on a new connection; bytes of a body that failed count as re-sent."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = 0
        try:
            conn.putrequest(method, path)
            for name, value in {**self.headers, **extra, "Content-Length": str(len(body))}.items():
                conn.putheader(name, value)
            conn.endheaders()
            view = memoryview(body)
            while sent < len(body):
                conn.send(view[sent : sent + _PIECE])
                sent += min(_PIECE, len(body) - sent)
            answer = conn.getresponse()
            return answer.status, answer.read()
        except (OSError, http.client.HTTPException):  # cut: reset, or an answer cut short
            self.resent += sent
            self.failures += 1
            return 0, b""
        finally:
            conn.close()

    def until_ok(self, method: str, path: str, body: bytes = b"", **extra: str) -> bytes:
        deadline = time.monotonic() + _DEADLINE
        while time.monotonic() < deadline:
            status, data = self.request(method, path, body, **extra)
            if 200 <= status < 300:
                return data
            if status:
                self.resent += len(body)
            time.sleep(0.2)
        raise TimeoutError(f"{method} {path} did not succeed in {_DEADLINE}s")


def upload(client: Client, size: int) -> dict[str, Any]:
    data = os.urandom(size)
    started = time.monotonic()
    created = json.loads(
        client.until_ok(
            "POST", f"{API}/create",
            json.dumps({"fileName": "f.bin", "fileSize": size, "contentType": "application/octet-stream",
                        "hash": hashlib.sha256(data).hexdigest()}).encode(),
            **{"Content-Type": "application/json"},
        )
    )  # fmt: skip
    task, chunk = created["taskId"], created["chunkSize"]
    for index in range(created["chunksCount"]):
        piece = data[index * chunk : (index + 1) * chunk]
        client.until_ok(
            "POST", f"{API}/chunk/{task}/{index}", piece, **{"Content-Type": "application/octet-stream"}
        )
    client.until_ok("POST", f"{API}/complete/{task}")
    return {"seconds": time.monotonic() - started, "chunk_size": chunk}


def main(argv: list[str]) -> int:
    base, client_id, size, count = argv[0], argv[1], int(argv[2]), int(argv[3])
    client = Client(base, client_id)
    for _ in range(count):
        resent, failures = client.resent, client.failures
        result = upload(client, size)
        result.update(resent=client.resent - resent, failures=client.failures - failures, size=size)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
