"""Reading an HTTP/1.1 response head from a raw socket (no client library in the way)."""

from __future__ import annotations

import socket


def read_head(sock: socket.socket) -> tuple[int, int, bytes]:
    """Status, Content-Length and the body bytes already received; interim
    ``100 Continue`` answers are skipped."""
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 100:
            break
        data = rest
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, length, rest
