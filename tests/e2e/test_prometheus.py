"""A real Prometheus (Debian's) scrapes two gunicorn workers while uploads run over every
resumable protocol and multipart; the totals it reports equal what was done."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.live import LiveServer
from tests.pg import free_port
from tests.worker_process import WorkerProcess, worker_config

PROMETHEUS = shutil.which("prometheus")
CHUNK = 256 * 1024
SCRAPE_INTERVAL = "1s"


@pytest.fixture
def server(e2e_backend: str, start_server: StartServer) -> LiveServer:
    if e2e_backend != "postgresql":
        pytest.skip("two workers need PostgreSQL")
    return start_server(workers=2)


@pytest.fixture
def prometheus(server: LiveServer, tmp_path: Path) -> Iterator[str]:
    """Prometheus on a free loopback port scraping ``server`` every second; its URL."""
    with _prometheus({"hmacfs": server.port}, tmp_path) as url:
        yield url


@contextlib.contextmanager
def _prometheus(jobs: dict[str, int], tmp_path: Path) -> Iterator[str]:
    """Prometheus scraping each job's loopback port every second; its URL."""
    if PROMETHEUS is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is required under CI=true (apt-get install prometheus)")
        pytest.skip("prometheus not installed (apt-get install --no-install-recommends prometheus)")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  evaluation_interval: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        + "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            for job, port in jobs.items()
        )
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, tmp_path / "prometheus.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus not ready:\n{log.read_text()[-3000:]}")


def _query(prometheus: str, expression: str) -> dict[str, float]:
    """The instant vector of ``expression`` as {first label value or "": value}."""
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5).json()
    assert answer["status"] == "success", answer
    return {
        next(iter(item["metric"].values()), ""): float(item["value"][1]) for item in answer["data"]["result"]
    }


def _settle(prometheus: str, expected: dict[str, dict[str, float]], seconds: float = 30) -> dict[str, Any]:
    """Query every expression until all equal their expectation (scrapes lag), or time out."""
    deadline = time.monotonic() + seconds
    while True:
        seen = {expression: _query(prometheus, expression) for expression in expected}
        if seen == expected or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def _drive(server: LiveServer, auth: dict[str, str], payload: bytes) -> None:
    api = f"{server.url}/api/files/upload"
    created = requests.post(f"{api}/create", json={
        "fileName": "d.bin", "fileSize": len(payload), "contentType": "application/octet-stream",
        "hash": hashlib.sha256(payload).hexdigest(), "chunkSize": CHUNK,
    }, headers=auth, timeout=10).json()  # fmt: skip
    task = created["taskId"]
    for index in range(created["chunksCount"]):
        body = payload[index * CHUNK : (index + 1) * CHUNK]
        answer = requests.post(f"{api}/chunk/{task}/{index}", data=body, headers=auth, timeout=10)
        assert answer.status_code == 200, answer.text
    assert requests.post(f"{api}/complete/{task}", headers=auth, timeout=30).status_code == 200


def _chunked(server: LiveServer, auth: dict[str, str], payload: bytes) -> None:
    headers = {**auth, "X-Filename": "c.bin", "X-Total-Size": str(len(payload)), "X-Chunk-Size": str(CHUNK)}
    opened = requests.post(f"{server.url}/upload/chunked", headers=headers, timeout=10).json()
    for index in range(opened["total_chunks"]):
        body = payload[index * CHUNK : (index + 1) * CHUNK]
        headers = {**auth, "X-Upload-Session-ID": opened["session_id"], "X-Chunk-Number": str(index)}
        answer = requests.put(f"{server.url}/upload/chunked", data=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
    assert answer.json()["completed"]


def _tus(server: LiveServer, auth: dict[str, str], payload: bytes) -> str:
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    name = base64.b64encode(b"t.bin").decode()
    created = requests.post(f"{server.url}/files/", headers={
        **tus, "Upload-Length": str(len(payload)), "Upload-Metadata": f"filename {name}",
    }, timeout=10)  # fmt: skip
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    for offset in range(0, len(payload), CHUNK):
        answer = requests.patch(location, data=payload[offset : offset + CHUNK], headers={
            **tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
        }, timeout=30)  # fmt: skip
        assert answer.status_code == 204, answer.text
    return location


def _multipart(server: LiveServer, auth: dict[str, str], payload: bytes) -> str:
    answer = requests.post(
        f"{server.url}/upload", files={"file": ("m.bin", payload)}, headers=auth, timeout=30
    )
    assert answer.status_code == 201, answer.text
    url: str = answer.json()["url"]
    return url


def _cancelled_drive(server: LiveServer, auth: dict[str, str]) -> None:
    api = f"{server.url}/api/files/upload"
    created = requests.post(f"{api}/create", json={
        "fileName": "x.bin", "fileSize": 10, "contentType": "application/octet-stream", "hash": "0" * 64,
    }, headers=auth, timeout=10).json()  # fmt: skip
    assert requests.delete(f"{api}/task/{created['taskId']}", headers=auth, timeout=10).status_code == 204


def _cancelled_task(server: LiveServer, auth: dict[str, str], file_id: str) -> None:
    created = requests.post(f"{server.url}/api/tasks", json={
        "type": "FileCompress", "parameters": {"fileIds": [file_id]},
    }, headers=auth, timeout=10)  # fmt: skip
    assert created.status_code == 201, created.text
    task = created.json()["taskId"]
    assert requests.post(f"{server.url}/api/tasks/{task}/cancel", headers=auth, timeout=10).status_code == 200


def test_prometheus_totals_equal_what_was_done(server: LiveServer, prometheus: str) -> None:
    auth = bearer(uuid.uuid4())
    sizes = {"drive": 3 * CHUNK + 11, "chunked": 2 * CHUNK + 5, "tus": 2 * CHUNK + 7, "multipart": 50_000}
    rounds = 3
    socket = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws", header=auth, timeout=10)
    try:
        downloaded = 0
        for _ in range(rounds):  # fresh bytes each time: no deduplication shortcuts
            _drive(server, auth, os.urandom(sizes["drive"]))
            _chunked(server, auth, os.urandom(sizes["chunked"]))
            _tus(server, auth, os.urandom(sizes["tus"]))
            url = _multipart(server, auth, os.urandom(sizes["multipart"]))
            downloaded += len(requests.get(url, headers=auth, timeout=30).content)
        _cancelled_drive(server, auth)
        _cancelled_task(server, auth, url.rsplit("/", 1)[-1])
        assert downloaded == rounds * sizes["multipart"]
        expected = {
            "sum by (protocol) (hmacfs_uploads_started_total)": {
                **{p: float(rounds) for p in sizes}, "drive": float(rounds + 1),
            },
            "sum by (protocol) (hmacfs_uploads_total)": {p: float(rounds) for p in sizes},
            "sum by (protocol) (hmacfs_upload_bytes_total)": {p: float(rounds * n) for p, n in sizes.items()},
            "sum by (protocol) (hmacfs_upload_duration_seconds_count)": {p: float(rounds) for p in sizes},
            "sum by (outcome) (hmacfs_uploads_failed_total)": {"cancelled": 1.0},
            "sum by (status) (hmacfs_tasks_total)": {"Cancelled": 1.0},
            "sum(hmacfs_download_bytes_total)": {"": float(downloaded)},
            "sum(hmacfs_websocket_subscribers)": {"": 1.0},
            "max(hmacfs_tasks_pending)": {"": 0.0},
            "max(hmacfs_uploads_stale)": {"": 0.0},
        }  # fmt: skip
        seen = _settle(prometheus, expected)
        assert seen == expected
        saturation = _query(prometheus, "sum(hmacfs_db_pool_checked_out) / sum(hmacfs_db_pool_capacity)")
        assert _query(prometheus, "sum(hmacfs_db_pool_capacity)")[""] > 0
        assert (
            0
            < _query(prometheus, "max(hmacfs_storage_free_bytes)")[""]
            <= _query(prometheus, "max(hmacfs_storage_size_bytes)")[""]
        )
        assert 0 <= saturation[""] < 1
        delivered = _query(prometheus, "sum(hmacfs_events_delivered_total)")
        assert delivered[""] > 0  # the socket's account saw its uploads' events
    finally:
        socket.close()


def _task(server: LiveServer, auth: dict[str, str], kind: str, **parameters: Any) -> str:
    created = requests.post(
        f"{server.url}/api/tasks", json={"type": kind, "parameters": parameters}, headers=auth, timeout=10
    )
    assert created.status_code == 201, created.text
    task_id: str = created.json()["taskId"]
    return task_id


def _wait_finished(server: LiveServer, auth: dict[str, str], task_ids: list[str]) -> dict[str, str]:
    """Each task's final status, once none is Pending or InProgress."""
    deadline, statuses = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        statuses = {
            task: requests.get(f"{server.url}/api/tasks/{task}", headers=auth, timeout=10).json()["status"]
            for task in task_ids
        }
        if not {"Pending", "InProgress"} & set(statuses.values()):
            return statuses
        time.sleep(0.2)
    raise AssertionError(f"tasks still running: {statuses}")


def _kill_a_slot(worker: WorkerProcess) -> None:
    """``kill -9`` one slot process of ``worker`` and wait until the supervisor has replaced it."""
    assert worker.process is not None
    children = Path(f"/proc/{worker.process.pid}/task/{worker.process.pid}/children")
    before = children.read_text().split()
    os.kill(int(before[0]), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = children.read_text().split()
        if before[0] not in now and len(now) >= len(before):
            return
        time.sleep(0.1)
    raise AssertionError(f"the killed slot {before[0]} was not replaced: {children.read_text()}")


def test_prometheus_counts_the_tasks_a_worker_runs(server: LiveServer, tmp_path: Path) -> None:
    """A real ``hmacfs worker --min 1 --max 2`` beside the server, scraped as its own job on
    ``[workers] metrics_bind``: the tasks its slots ran (one slot killed with kill -9 on the
    way) are counted once, by type and outcome, with their durations and the scaling gauges."""
    port = free_port()
    config = worker_config(
        tmp_path / "worker",
        server.database_url,
        storage={"path": str(server.workdir / "storage")},
        tasks={"poll_interval": "100ms"},
        workers={"metrics_bind": f"127.0.0.1:{port}", "worker_scale_interval": "300ms"},
    )
    worker = WorkerProcess(config, arguments=("--min", "1", "--max", "2")).start()
    try:
        with _prometheus({"hmacfs": server.port, "hmacfs-worker": port}, tmp_path) as prometheus:
            auth = bearer(uuid.uuid4())
            files = [_multipart(server, auth, os.urandom(20_000)).rsplit("/", 1)[-1] for _ in range(2)]
            first = [_task(server, auth, "FileCompress", fileIds=[files[0]]) for _ in range(3)]
            broken = [_task(server, auth, "FileDecompress", fileId=files[1]) for _ in range(2)]  # not a zip
            assert set(_wait_finished(server, auth, first).values()) == {"Completed"}
            assert set(_wait_finished(server, auth, broken).values()) == {"Failed"}
            _kill_a_slot(worker)  # what it counted stays counted
            second = [_task(server, auth, "FileCompress", fileIds=files) for _ in range(2)]
            assert set(_wait_finished(server, auth, second).values()) == {"Completed"}
            job = 'job="hmacfs-worker"'
            expected = {
                f'sum by (status) (hmacfs_tasks_total{{{job}, type="FileCompress"}})': {"Completed": 5.0},
                f'sum by (status) (hmacfs_tasks_total{{{job}, type="FileDecompress"}})': {"Failed": 2.0},
                f"sum by (type) (hmacfs_task_duration_seconds_count{{{job}}})": {
                    "FileCompress": 5.0, "FileDecompress": 2.0,
                },
                'sum(hmacfs_tasks_total{job="hmacfs"})': {},  # the web side ran none: nothing twice
                f"max(hmacfs_task_queue_depth{{{job}}})": {"": 0.0},
                # Each live slot's pool (20 + 10), the killed slot's gone.
                f"sum(hmacfs_db_pool_capacity{{{job}}}) / max(hmacfs_worker_slots)": {"": 30.0},
            }  # fmt: skip
            seen = _settle(prometheus, expected)
            assert seen == expected
            assert 1 <= _query(prometheus, "max(hmacfs_worker_slots)")[""] <= 2
    finally:
        assert worker.stop() == 0
