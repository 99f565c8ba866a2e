"""Run inside the server's network namespace (``ip netns exec``): a webhook receiver and
two /ws subscribers of the server there, everything they get appended to a file as
JSON lines. tests/e2e/test_interface_monitor.py reads the file.

    python -m tests.e2e.netns_listener OUT WS_URL HOOK_PORT NAME=TOKEN [NAME=TOKEN ...]

Each line is ``{"via": "webhook" | "ws:<NAME>", "message": {...}}``; a line
``{"via": "ready"}`` follows once every subscriber's ping was answered. Runs until killed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import websocket

_LOCK = threading.Lock()


def _write(out: Path, line: dict[str, Any]) -> None:
    with _LOCK, out.open("a") as file:
        file.write(json.dumps(line) + "\n")


def _receiver(out: Path, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            _write(out, {"via": "webhook", "message": json.loads(body)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _subscribe(url: str, token: str, deadline: float) -> websocket.WebSocket:
    while True:
        try:
            sock = websocket.create_connection(url, header=[f"Authorization: Bearer {token}"], timeout=5)
        except (OSError, websocket.WebSocketException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        sock.send(json.dumps({"type": "ping"}))
        return sock


def _listen(out: Path, name: str, sock: websocket.WebSocket, ready: threading.Event) -> None:
    sock.settimeout(None)
    while True:
        message = json.loads(sock.recv())
        if message.get("type") == "pong":
            ready.set()
            continue
        _write(out, {"via": f"ws:{name}", "message": message})


def main(argv: list[str]) -> None:
    out, url, port, *subscribers = argv
    _receiver(Path(out), int(port))
    deadline = time.monotonic() + 60
    waits = []
    for pair in subscribers:
        name, token = pair.split("=", 1)
        ready = threading.Event()
        sock = _subscribe(url, token, deadline)
        threading.Thread(target=_listen, args=(Path(out), name, sock, ready), daemon=True).start()
        waits.append(ready)
    for ready in waits:
        ready.wait(30)
    _write(Path(out), {"via": "ready"})
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
