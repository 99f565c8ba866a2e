"""Several hmacfs nodes behind nginx: two ``hmacfs serve`` masters, one ``hmacfs worker``,
one PostgreSQL database and one blob store, for tests/e2e/test_nodes.py.

Which node answered a request is read from nginx's access log: nginx sends its
``$request_id`` to the node, the node echoes it as ``X-Request-ID``, and the
log line with that id names the upstream (or upstreams, in order) it went to.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.nginx_proxy import LogLine, Nginx
from tests.live import LiveServer
from tests.worker_process import WorkerProcess, worker_config

JS = Path(__file__).resolve().parent / "js"
API = "/api/files/upload"


@dataclass
class Cluster:
    """Nodes ``A`` and ``B``, a worker and nginx over one database and blob store."""

    root: Path
    database_url: str
    storage: dict[str, dict[str, Any]]  # the [storage...] sections every process shares
    nodes: dict[str, LiveServer] = field(default_factory=dict)
    worker: WorkerProcess | None = None
    nginx: Nginx | None = None

    def start(self) -> Cluster:
        # Behind one proxy: X-Forwarded-* from nginx shape the URLs handed out.
        server = {"trusted_proxy_count": 1, "trusted_hosts": ["127.0.0.1", "localhost"]}
        for name in ("A", "B"):
            node = LiveServer(self.root / f"node-{name}", self.database_url, workers=2,
                              sections={**self.storage, "server": server})  # fmt: skip
            self.nodes[name] = node.start()
        config = worker_config(self.root / "worker", self.database_url, **self.storage)
        self.worker = WorkerProcess(config, concurrency=1).start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes.values()]
        self.nginx = Nginx(self.root / "nginx", addresses, self.shared_storage).start()
        return self

    @property
    def shared_storage(self) -> Path:
        return Path(self.storage["storage"]["path"])

    @property
    def proxy(self) -> Nginx:
        assert self.nginx is not None
        return self.nginx

    def session(self) -> requests.Session:
        """A client of nginx that trusts its self-signed certificate."""
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override ``verify``
        session.verify = str(self.proxy.cert)
        return session

    def drive(self, auth: dict[str, str], base: str = "") -> Drive:
        """A Drive client through nginx, or of the node at ``base``."""
        return Drive(self.session(), base or self.proxy.url, auth)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.proxy.cert))

    def name_of(self, address: str) -> str:
        for name, node in self.nodes.items():
            if address == f"127.0.0.1:{node.port}":
                return name
        raise AssertionError(f"{address} is no node of this cluster")

    def line(self, response: requests.Response | http.client.HTTPResponse) -> LogLine:
        request_id = response.headers.get("X-Request-ID")
        assert request_id, "no X-Request-ID in the answer: it did not come from a node"
        return self.proxy.line_of(request_id)

    def answered_by(self, response: requests.Response) -> str:
        """The node that answered ``response`` (the last upstream nginx tried)."""
        return self.name_of(self.line(response).upstreams[-1])

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        if self.worker is not None:
            self.worker.stop()
        for node in self.nodes.values():
            node.stop()


def alternates(names: list[str]) -> bool:
    """Both nodes appear and no node answered two consecutive requests."""
    return set(names) == {"A", "B"} and all(a != b for a, b in itertools.pairwise(names))


@dataclass(frozen=True)
class Drive:
    """A Drive API client of one server (a node, or nginx) for one account."""

    session: requests.Session
    base: str
    auth: dict[str, str]

    def create(self, data: bytes, chunk: int) -> str:
        """Start an upload of ``data`` in ``chunk``-byte chunks; its task id."""
        created = self.session.post(
            f"{self.base}{API}/create",
            json={
                "fileName": "nodes.bin", "fileSize": len(data), "contentType": "application/octet-stream",
                "chunkSize": chunk, "hash": hashlib.sha256(data).hexdigest(),
            },
            headers=self.auth, timeout=30,
        )  # fmt: skip
        assert created.status_code == 200, created.text
        answer: dict[str, Any] = created.json()
        assert answer["fileExists"] is False and answer["chunkSize"] == chunk
        task: str = answer["taskId"]
        return task

    def chunk(self, task: str, index: int, body: bytes) -> requests.Response:
        sent = self.session.post(
            f"{self.base}{API}/chunk/{task}/{index}", data=body,
            headers={**self.auth, "Content-Type": "application/octet-stream"}, timeout=60,
        )  # fmt: skip
        assert sent.status_code == 200, sent.text
        return sent

    def complete(self, task: str) -> dict[str, Any]:
        done = self.session.post(f"{self.base}{API}/complete/{task}", headers=self.auth, timeout=120)
        assert done.status_code == 200, done.text
        answer: dict[str, Any] = done.json()
        return answer

    def upload(self, data: bytes, chunk: int) -> tuple[list[requests.Response], dict[str, Any]]:
        """The whole upload, chunk after chunk: each chunk's answer, and the file."""
        task = self.create(data, chunk)
        sent = [self.chunk(task, i // chunk, data[i : i + chunk]) for i in range(0, len(data), chunk)]
        return sent, self.complete(task)


def download_sha256(session: requests.Session, url: str, headers: dict[str, str]) -> str:
    """SHA-256 of a download, streamed (a 1 GiB file stays out of memory)."""
    hasher = hashlib.sha256()
    with session.get(url, headers=headers, stream=True, timeout=600) as answer:
        assert answer.status_code == 200, answer.text
        for block in answer.iter_content(1024 * 1024):
            hasher.update(block)
    return hasher.hexdigest()


def wait_task(
    session: requests.Session, url: str, auth: dict[str, str], done: set[str], timeout: float
) -> Any:
    """Poll ``GET url`` until its ``status`` is in ``done``; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        task = session.get(url, headers=auth, timeout=10).json()
        if task["status"] in done or time.monotonic() > deadline:
            return task
        time.sleep(0.1)


def node_binary() -> str:
    """Node for tus-js-client, as tests/e2e/test_tus_js_client.py wants it: skip without
    node or npm, fail when the pinned package is not installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run tus-js-client (not found on PATH)")
    if not (JS / "node_modules" / "tus-js-client").is_dir():
        pytest.fail(f"tus-js-client is not installed: run `npm ci` in {JS} (make test does)")
    return node


def tus_js_upload(cluster: Cluster, source: Path, auth: dict[str, str], chunk: int) -> dict[str, Any]:
    """tus-js-client (Node) uploading ``source`` through nginx, trusting its certificate."""
    options = {"endpoint": f"{cluster.proxy.url}/files/", "file": str(source), "headers": auth,
               "chunkSize": chunk, "metadata": {"filename": source.name}}  # fmt: skip
    done = subprocess.run(
        [node_binary(), str(JS / "tus_upload.js"), json.dumps(options)],
        cwd=JS, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(cluster.proxy.cert)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer
