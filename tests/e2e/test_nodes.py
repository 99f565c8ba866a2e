"""Several nodes: two ``hmacfs serve`` masters and one ``hmacfs worker`` over one PostgreSQL
and one blob store, behind a real nginx running the shipped ``etc/nginx/hmacfs.conf``.

nginx balances round robin with one worker process, so consecutive requests of one
client alternate between the nodes; its access log (see tests/e2e/nodes.py) names
the node of each request, which is how these tests know. The node-kill test is
last: node A stays dead after it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import json
import os
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.conftest import HMAC_SECRET, bearer, new_database_url
from tests.e2e.nodes import (
    API,
    Cluster,
    alternates,
    download_sha256,
    tus_js_upload,
    wait_task,
)
from tests.events_client import connect, receive
from tests.pg import PgServer
from tests.seaweed import SeaweedS3

pytestmark = pytest.mark.e2e

KiB, MiB = 1024, 1024 * 1024
CHUNK = 256 * KiB  # the smallest chunk a client may ask for (uploads.min_chunk_size)


@pytest.fixture(scope="module", params=["local", "s3"])
def cluster(
    request: pytest.FixtureRequest, pg_server: PgServer | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The blob store shared by every process: one directory (as NFS would be), or S3."""
    root = tmp_path_factory.mktemp(f"nodes-{request.param}")
    url = new_database_url("postgresql", pg_server, root)  # several processes: PostgreSQL only
    storage: dict[str, dict[str, Any]] = {"storage": {"path": str(root / "shared-storage")}}
    credentials: dict[str, str] = {}
    if request.param == "s3":
        store: SeaweedS3 = request.getfixturevalue("seaweed")
        storage["storage"]["backend"] = "s3"
        storage["storage.s3"] = store.settings(f"nodes-{uuid.uuid4().hex[:8]}/")
        credentials = store.env
    with pytest.MonkeyPatch.context() as patch:
        for name, value in credentials.items():  # every process started here inherits them
            patch.setenv(name, value)
        cluster = Cluster(root, url, storage)
        try:
            yield cluster.start()
        finally:
            cluster.stop()


def test_drive_chunks_and_tus_patches_alternate_between_nodes(cluster: Cluster) -> None:
    http_ = cluster.session()
    base, auth = cluster.proxy.url, bearer(uuid.uuid4())
    data = os.urandom(6 * CHUNK + 1000)
    chunks, done = cluster.drive(auth).upload(data, CHUNK)
    nodes = [cluster.answered_by(sent) for sent in chunks]
    assert alternates(nodes), nodes
    assert done["hash"] == hashlib.sha256(data).hexdigest()
    assert download_sha256(http_, f"{base}/download/{done['id']}", auth) == done["hash"]

    tus = {**auth, "Tus-Resumable": "1.0.0"}
    created = http_.post(f"{base}/files/", headers={**tus, "Upload-Length": str(len(data))}, timeout=10)
    assert created.status_code == 201, created.text
    # X-Forwarded-Proto, -Host and -Port from nginx: the URL the client called, port included.
    location = created.headers["Location"]
    assert location.startswith(f"{base}/files/"), location
    patches = []
    for offset in range(0, len(data), CHUNK):
        patched = http_.patch(
            location, data=data[offset : offset + CHUNK], timeout=60,
            headers={**tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
        )  # fmt: skip
        assert patched.status_code == 204, patched.text
        patches.append(cluster.answered_by(patched))
    assert alternates(patches), patches
    head = http_.head(location, headers=tus, timeout=10)
    assert head.headers["Upload-Offset"] == str(len(data))


def test_websocket_on_node_a_sees_progress_of_chunks_sent_to_node_b(cluster: Cluster) -> None:
    account = uuid.uuid4()
    sock = connect(cluster.nodes["A"], account)  # straight to node A, not through nginx
    chunks, done = cluster.drive(bearer(account)).upload(os.urandom(6 * CHUNK), CHUNK)
    # chunksUploaded once a chunk is in (they go one by one)
    on_b = [index + 1 for index, sent in enumerate(chunks) if cluster.answered_by(sent) == "B"]
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["type"] != "upload.completed":
        seen.append(receive(sock))
    progress = {e["data"]["chunksUploaded"] for e in seen if e["type"] == "upload.progress"}
    assert on_b and set(on_b) <= progress, (on_b, progress)  # every 1/6 step (> 5 %) is published
    assert seen[-1]["data"]["fileId"] == done["id"]
    sock.close()


def test_websocket_through_nginx(cluster: Cluster) -> None:
    account = uuid.uuid4()
    sock = websocket.create_connection(
        cluster.proxy.ws_url, header=[f"Authorization: {bearer(account)['Authorization']}"],
        sslopt={"ca_certs": str(cluster.proxy.cert)}, timeout=15,
    )  # fmt: skip
    sock.send(json.dumps({"type": "ping"}))
    assert json.loads(sock.recv())["type"] == "pong"
    _, done = cluster.drive(bearer(account), cluster.nodes["B"].url).upload(os.urandom(2 * CHUNK), CHUNK)
    events = []
    while not events or events[-1]["type"] != "upload.completed":
        events.append(json.loads(sock.recv()))
    assert events[-1]["data"]["fileId"] == done["id"]
    sock.close()


def test_task_submitted_on_node_a_is_run_by_the_worker(cluster: Cluster) -> None:
    """Nodes run no tasks: with the worker stopped the task waits, once it runs it is done."""
    assert cluster.worker is not None
    cluster.worker.stop()
    http_ = cluster.session()
    auth = bearer(uuid.uuid4())
    data = os.urandom(CHUNK + 17)
    file_id = cluster.drive(auth).upload(data, CHUNK)[1]["id"]
    parameters = {"fileIds": [file_id], "compressionFormat": "zip", "compressionLevel": 6,
                  "outputFileName": "nodes.zip"}  # fmt: skip
    submitted = http_.post(f"{cluster.nodes['A'].url}/api/tasks", headers=auth, timeout=10,
                           json={"type": "FileCompress", "parameters": parameters})  # fmt: skip
    assert submitted.status_code == 201, submitted.text
    url = f"{cluster.nodes['B'].url}/api/tasks/{submitted.json()['taskId']}"
    waiting = wait_task(http_, url, auth, {"Completed", "Failed"}, timeout=3)
    assert waiting["status"] == "Pending", waiting  # 3 worker poll intervals: no node took it

    cluster.worker.start()
    task_json = wait_task(http_, url, auth, {"Completed", "Failed", "Cancelled"}, timeout=60)
    assert task_json["status"] == "Completed", task_json
    result = http_.get(f"{cluster.proxy.url}/download/{task_json['results']['resultFileId']}",
                       headers=auth, timeout=30)  # fmt: skip
    assert result.status_code == 200, result.text
    with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
        assert [archive.read(name) for name in archive.namelist()] == [data]


def _stamped_blocks(count: int, block: bytes) -> Iterator[bytes]:
    for index in range(count):
        yield index.to_bytes(8, "big") + block[8:]


@pytest.mark.timeout(900)
def test_one_gib_xep0363_put_through_nginx(cluster: Cluster) -> None:
    block, count = os.urandom(MiB), 1024
    expected = hashlib.sha256()
    for piece in _stamped_blocks(count, block):
        expected.update(piece)
    path = f"{uuid.uuid4().hex}/big.bin"
    size = count * MiB
    signature = hmac.new(HMAC_SECRET.encode(), f"{path} {size}".encode(), hashlib.sha256).hexdigest()
    conn = http.client.HTTPSConnection(
        "127.0.0.1", cluster.proxy.port, context=cluster.ssl_context(), timeout=600, blocksize=MiB
    )
    conn.request("PUT", f"/upload/{path}?v={signature}", body=_stamped_blocks(count, block),
                 headers={"Content-Length": str(size)})  # fmt: skip
    answer = conn.getresponse()
    assert answer.status == 201, answer.read()[:300]
    conn.close()
    url = f"{cluster.proxy.url}/upload/{path}"
    assert download_sha256(cluster.session(), url, {}) == expected.hexdigest()


def test_tus_js_client_through_nginx(cluster: Cluster, tmp_path: Path) -> None:
    auth = bearer(uuid.uuid4())
    data = os.urandom(8 * CHUNK + 5)
    source = tmp_path / "tus.bin"
    source.write_bytes(data)
    answer = tus_js_upload(cluster, source, auth, CHUNK)
    assert answer["url"].startswith(f"{cluster.proxy.url}/files/") and answer["aborted"] is False
    upload_path = answer["url"].removeprefix(cluster.proxy.url)
    patches = [cluster.name_of(line.upstreams[-1]) for line in cluster.proxy.log()
               if line.request == f"PATCH {upload_path} HTTP/1.1"]  # fmt: skip
    assert len(patches) == 9 and alternates(patches), patches
    http_ = cluster.session()
    upload = http_.get(
        f"{cluster.proxy.url}/api/tasks/{upload_path.rsplit('/', 1)[1]}", headers=auth, timeout=10
    )
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["results"]["fileId"]
    url = f"{cluster.proxy.url}/download/{file_id}"
    assert download_sha256(http_, url, auth) == hashlib.sha256(data).hexdigest()


def _send_with_kill(cluster: Cluster, path: str, auth: dict[str, str], body: bytes) -> int | None:
    """POST ``body`` through nginx, killing node A (kill -9, master and workers) halfway
    through the body; the status nginx answered, or None when it closed the connection."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", cluster.proxy.port, context=cluster.ssl_context(), timeout=60
    )
    conn.putrequest("POST", path)
    for name, value in {**auth, "Content-Type": "application/octet-stream",
                        "Content-Length": str(len(body))}.items():  # fmt: skip
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(body[: len(body) // 2])
    time.sleep(0.5)  # nginx passes the first half on to the node
    cluster.nodes["A"].kill()
    try:
        conn.send(body[len(body) // 2 :])
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def test_node_a_killed_mid_upload_the_upload_finishes_through_b(cluster: Cluster) -> None:
    auth = bearer(uuid.uuid4())
    drive, chunk = cluster.drive(auth), 4 * MiB
    data = os.urandom(8 * chunk)
    task = drive.create(data, chunk)
    body = [data[i * chunk : (i + 1) * chunk] for i in range(8)]
    killed_at, last = 0, ""
    while killed_at < 2 or last != "B":  # round robin: the next request goes to A
        last = cluster.answered_by(drive.chunk(task, killed_at, body[killed_at]))
        killed_at += 1
    status = _send_with_kill(cluster, f"{API}/chunk/{task}/{killed_at}", auth, body[killed_at])
    assert status in (None, 502), status  # nginx cannot replay a body it began to pass on
    request = f"POST {API}/chunk/{task}/{killed_at} HTTP/1.1"
    line = cluster.proxy.find_line(lambda line: line.request == request, request)
    assert [cluster.name_of(u) for u in line.upstreams] == ["A"] and line.status == 502, line

    after = [cluster.answered_by(drive.chunk(task, i, body[i])) for i in range(killed_at, 8)]
    assert after == ["B"] * len(after), after  # the resent chunk and every later one
    done = drive.complete(task)
    assert done["hash"] == hashlib.sha256(data).hexdigest()
    url = f"{cluster.proxy.url}/download/{done['id']}"
    assert download_sha256(drive.session, url, auth) == done["hash"]
