"""``[logging] format = "json"`` under the real gunicorn: every line is JSON, and a request id
sent as nginx sends it comes back in the response and ends the access line."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.e2e.conftest import StartServer

pytestmark = pytest.mark.e2e


def test_json_logs_with_request_ids(start_server: StartServer) -> None:
    server = start_server(workers=1, logging={"format": "json", "access_log": True})
    response = requests.get(f"{server.url}/health", headers={"X-Request-ID": "nginx-req-4711"}, timeout=5)
    assert response.headers["X-Request-ID"] == "nginx-req-4711"
    made = requests.get(f"{server.url}/api/tasks", timeout=5)
    assert made.status_code == 401 and len(made.headers["X-Request-ID"]) == 32
    deadline = time.monotonic() + 10
    ids = ("nginx-req-4711", made.headers["X-Request-ID"])  # each access line is written after its answer
    while not all(ident in server.log() for ident in ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [line for line in server.log().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in lines]
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    assert any(e["message"].endswith("nginx-req-4711") and "GET /health" in e["message"] for e in access)
    assert any(e["message"].endswith(made.headers["X-Request-ID"]) for e in access)
    assert any(e["logger"] == "gunicorn.error" for e in entries)  # gunicorn's own lines are JSON too
    assert all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
