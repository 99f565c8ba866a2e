"""The real server: gunicorn + gevent workers, started by ``hmacfs serve``."""

from __future__ import annotations

import signal
from pathlib import Path

import requests

from tests.e2e.conftest import StartServer
from tests.live import LiveServer


def test_health_over_real_server(live_server: LiveServer) -> None:
    assert requests.get(f"{live_server.url}/health", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{live_server.url}/health/uploads", timeout=5)
    assert ready.status_code == 200 and ready.json()["database"]["ok"] is True


def test_errors_keep_their_shape_over_real_server(live_server: LiveServer) -> None:
    response = requests.get(f"{live_server.url}/nothing-here", timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json()) == {"code", "message", "status", "details"}


def test_runs_gevent_workers(live_server: LiveServer) -> None:
    from gunicorn.workers.ggevent import GeventWorker

    from hmacfs.http_worker import HmacfsGeventWorker

    log = live_server.log()
    # hmacfs's worker: gunicorn's gevent worker with a lazy 100 Continue and bounded heads
    assert "Using worker: hmacfs.http_worker.HmacfsGeventWorker" in log
    assert issubclass(HmacfsGeventWorker, GeventWorker)
    assert log.count("Booting worker") >= live_server.workers


def _health_count(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("flask_http_request_total{") and 'status="200"' in line and 'method="GET"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_add_up_across_workers(live_server: LiveServer) -> None:
    before = _health_count(requests.get(f"{live_server.url}/metrics", timeout=5).text)
    requests_sent = 60
    for _ in range(requests_sent):  # new connections spread over the workers
        requests.get(f"{live_server.url}/health", timeout=5, headers={"Connection": "close"})
    text = requests.get(f"{live_server.url}/metrics", timeout=5).text
    assert "# TYPE flask_http_request_total counter" in text
    # every /health request above is counted exactly once, whichever worker served it
    after = _health_count(text)
    assert after - before >= requests_sent
    assert after - before <= requests_sent + 2  # the first /metrics call itself


def test_sigterm_stops_cleanly(start_server: StartServer) -> None:
    server = start_server(workers=1)
    server.stop(signal.SIGTERM)
    assert server.process is not None and server.process.returncode == 0


def test_sqlite_serves_one_worker_whatever_is_asked(tmp_path: Path) -> None:
    """SQLite's writer locks and running hashes live in one process: ``--workers 3`` forks one."""
    server = LiveServer(tmp_path, f"sqlite:///{tmp_path / 'one.db'}", workers=3)
    server.start()
    try:
        assert requests.get(f"{server.url}/health", timeout=5).status_code == 200
        log = server.log()
        assert log.count("Booting worker") == 1
        assert "SQLite serves one process: running 1 worker instead of 3" in log
    finally:
        server.stop()
