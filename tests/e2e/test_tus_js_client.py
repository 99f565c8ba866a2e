"""tus 1.0 interoperability with the real tus-js-client (npm), run in Node against ``hmacfs serve``.

The package is pinned in ``tests/e2e/js/package-lock.json`` and installed by
``make test`` (``npm ci``). Without ``node``/``npm`` on the machine the test
is skipped; with them but without the install it fails, naming the command.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from hmacfs.web.tus_headers import parse_metadata
from tests.conftest import bearer
from tests.live import LiveServer

JS = Path(__file__).resolve().parent / "js"
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run tus-js-client (not found on PATH)")
    if not (JS / "node_modules" / "tus-js-client").is_dir():
        pytest.fail(f"tus-js-client is not installed: run `npm ci` in {JS} (make test does)")
    return node


def run_client(node: str, **options: Any) -> dict[str, Any]:
    done = subprocess.run(
        [node, str(JS / "tus_upload.js"), json.dumps(options)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def stored_sha256(server: LiveServer, payload: bytes) -> str:
    """Hash the stored blob itself (default pool: the store root), not what the server says."""
    sha256 = hashlib.sha256(payload).hexdigest()
    path = server.workdir / "storage" / "blobs" / sha256[:2] / sha256[2:4] / sha256
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upload_with_metadata(live_server: LiveServer, node: str, tmp_path: Path) -> None:
    auth = bearer(uuid.uuid4())
    payload = os.urandom(3 * CHUNK + 123)
    source = tmp_path / "photo.jpg"
    source.write_bytes(payload)
    answer = run_client(
        node,
        endpoint=f"{live_server.url}/files/",
        file=str(source),
        headers=auth,
        metadata={"filename": "photo.jpg", "filetype": "image/jpeg"},
    )
    assert answer["url"].startswith(f"{live_server.url}/files/") and answer["aborted"] is False
    head = requests.head(answer["url"], headers={**auth, "Tus-Resumable": "1.0.0"}, timeout=10)
    assert head.headers["Upload-Offset"] == str(len(payload))
    metadata = parse_metadata(head.headers["Upload-Metadata"])
    assert metadata == {"filename": "photo.jpg", "filetype": "image/jpeg"}
    assert stored_sha256(live_server, payload) == hashlib.sha256(payload).hexdigest()


def test_abort_then_resume_from_stored_url(live_server: LiveServer, node: str, tmp_path: Path) -> None:
    auth = bearer(uuid.uuid4())
    payload = os.urandom(8 * CHUNK + 5)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    endpoint = f"{live_server.url}/files/"
    common = {"endpoint": endpoint, "file": str(source), "headers": auth, "chunkSize": CHUNK}
    first = run_client(node, **common, metadata={"filename": "big.bin"}, abortAfter=3 * CHUNK)
    assert first["aborted"] is True and 3 * CHUNK <= first["bytesAcknowledged"] < len(payload)
    head = requests.head(first["url"], headers={**auth, "Tus-Resumable": "1.0.0"}, timeout=10)
    assert int(head.headers["Upload-Offset"]) == first["bytesAcknowledged"]

    resumed = run_client(node, **common, uploadUrl=first["url"])
    assert resumed["aborted"] is False and resumed["url"] == first["url"]
    assert resumed["firstPatchOffset"] == first["bytesAcknowledged"]  # it resumed, not restarted
    assert stored_sha256(live_server, payload) == hashlib.sha256(payload).hexdigest()
