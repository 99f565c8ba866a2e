"""Load generator run as its own process (gevent-patched): many connections at once.

``python -m bench._xep_load JOB.json`` prints a JSON result. Jobs:
- ``small``: ``connections`` keep-alive connections share ``requests`` (method,
  target) of ``size``-byte bodies (PUT) or downloads (GET); result: ok, failed, seconds.
- ``slow``: one connection per target, each PUT of ``size`` bytes trickled in
  ``pieces`` over ``seconds``; result: ok, failed, statuses, seconds.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.pool import Pool  # noqa: E402

from bench._http import read_head  # noqa: E402


def read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one response (Content-Length framed), discarding the body; return its status."""
    status, length, rest = read_head(sock)
    remaining = length - len(rest)
    view = memoryview(buffer)
    while remaining > 0:
        got = sock.recv_into(view[: min(len(buffer), remaining)])
        if not got:
            raise ConnectionError("closed")
        remaining -= got
    return status


def small(job: dict[str, Any]) -> dict[str, Any]:
    port, size = job["port"], job["size"]
    body = b"b" * size
    queue = list(reversed(job["requests"]))
    counts: Counter[str] = Counter()

    def worker() -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        buffer = bytearray(1 << 20)
        while queue:
            method, target = queue.pop()
            extra = f"Content-Length: {size}\r\n" if method == "PUT" else ""
            head = f"{method} {target} HTTP/1.1\r\nHost: bench\r\n{extra}\r\n".encode()
            # Unique content per request: identical bodies would all hit one
            # deduplicated blob row, which is not what many clients look like.
            unique = f"{len(queue):016d}".encode()
            sock.sendall(head + unique + body[16:] if method == "PUT" else head)
            status = read_response(sock, buffer)
            counts["ok" if status < 300 else "failed"] += 1
            counts[str(status)] += 1
        sock.close()

    start = time.perf_counter()
    greenlets = [gevent.spawn(worker) for _ in range(job["connections"])]
    gevent.joinall(greenlets, timeout=job.get("timeout", 300))
    statuses = {key: n for key, n in counts.items() if key.isdigit()}
    seconds = time.perf_counter() - start
    return {"ok": counts["ok"], "failed": counts["failed"], "statuses": statuses, "seconds": seconds}


def slow(job: dict[str, Any]) -> dict[str, Any]:
    port, size, pieces, spread = job["port"], job["size"], job["pieces"], job["seconds"]
    piece = b"s" * (size // pieces)
    statuses: Counter[int] = Counter()

    def upload(target: str) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=120)
            head = f"PUT {target} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(piece) * pieces}\r\n\r\n"
            sock.sendall(head.encode())
            for _ in range(pieces):
                sock.sendall(piece)
                gevent.sleep(spread / pieces)
            statuses[read_response(sock, bytearray(65536))] += 1
            sock.close()
        except OSError:
            statuses[0] += 1

    start = time.perf_counter()
    pool = Pool(len(job["targets"]))
    for target in job["targets"]:
        pool.spawn(upload, target)
    pool.join(timeout=job.get("timeout", 300))
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {
        "ok": ok,
        "failed": len(job["targets"]) - ok,
        "statuses": dict(statuses),
        "seconds": time.perf_counter() - start,
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        spec = json.load(handle)
    print(json.dumps({"small": small, "slow": slow}[spec["kind"]](spec)))
