"""The tus peer of ``bench/resumable.py``: @tus/server 2.x with @tus/file-store on Node,
installed with npm into a scratch folder and started on a free loopback port. It
neither hashes nor fsyncs (hmacfs is reported as configured and with fsync off)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.pg import free_port

SERVER = """
import http from "node:http";
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";
const [port, dir] = process.argv.slice(2);
const tus = new Server({ path: "/files", datastore: new FileStore({ directory: dir }) });
http.createServer((req, res) => tus.handle(req, res)).listen(Number(port), "127.0.0.1");
"""


def start_tus_peer(root: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    """(process, base URL) of a running peer, or None (said why) without node and npm."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        print("node/npm not found: no @tus/server peer")
        return None
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text('{"name": "tus-peer", "private": true}')
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "@tus/server@2", "@tus/file-store@2"],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (root / "server.mjs").write_text(SERVER)
    (root / "data").mkdir(exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [node, "server.mjs", str(port), str(root / "data")], cwd=root, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("@tus/server did not start")
