"""The ``[handoff]`` and ``[client_optimization]`` keys switched away from their defaults, on
the real server: each changes what tests/e2e/test_handoff.py measures with the defaults.

- ``chunk_retry_on_switch = false``: a retry from another network no longer takes over
  after one writer_poll; it waits for ``writer_silence`` like any retry;
- ``switch_notification_enabled = false``: the switch is counted, not published;
- ``seamless_switching = false``: no takeover at all; a tus retry meets 423 while the
  stalled writer holds the upload;
- ``strategy_server.timeout_multiplier``: curl's silent body is cut sooner than a browser's.
"""

from __future__ import annotations

import os
import socket
import time

import pytest
import requests

from tests.e2e.conftest import StartServer
from tests.e2e.test_handoff import CHUNK, NEW_NETWORK, Upload, _events, _ok, _stale_answer

pytestmark = pytest.mark.e2e


def test_without_chunk_retry_on_switch_a_switched_retry_waits_for_silence(start_server: StartServer) -> None:
    server = start_server(handoff={"chunk_retry_on_switch": False, "switch_notification_enabled": False})
    upload = Upload(server, "drive", os.urandom(CHUNK * 2)).create()
    assert _ok(upload.send(0)[0])
    stale = upload.stall(1, CHUNK // 2)
    try:
        time.sleep(0.6)  # with the default, the retry would take over within a second of this
        started = time.monotonic()
        status, body = upload.send(1, NEW_NETWORK, **{"Hmacfs-Network": "type=lte"})
        took = time.monotonic() - started
        assert _ok(status), body
        assert _stale_answer(stale, 3.0).startswith(b"HTTP/1.1 409")  # taken over, later
    finally:
        stale.close()
    assert 1.1 < took < 4.0, f"the retry took {took:.2f} s (writer_silence is 2 s)"
    assert _events(server, upload.account, "upload.network_changed") == []
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    assert 'hmacfs_upload_network_changes_total{from_network="unknown",protocol="drive"' in metrics


def _stall_tus(upload: Upload, index: int, **extra: str) -> socket.socket:
    """A tus PATCH of chunk ``index`` with its first half sent, then nothing."""
    method, path, headers = upload.head(index, extra)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    raw = socket.create_connection(("127.0.0.1", upload.server.port), timeout=10)
    raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + upload.chunk(index)[: CHUNK // 2])
    return raw


def test_without_seamless_switching_a_stalled_tus_writer_keeps_its_upload(start_server: StartServer) -> None:
    """And ``strategy_server`` (curl) gets 0.5 x body_idle, a browser the whole of it."""
    server = start_server(
        timeouts={"body_idle": "4s"},
        handoff={"seamless_switching": False},
        client_optimization={"strategy_server": {"timeout_multiplier": 0.5}},
    )
    upload = Upload(server, "tus", os.urandom(CHUNK * 2)).create()
    assert _ok(upload.send(0)[0])
    stale = _stall_tus(upload, 1, **{"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"})
    try:
        time.sleep(2.3)  # past writer_silence: with the default, the retry would take over
        status, body = upload.send(1)
        assert status == 423, body
    finally:
        stale.close()

    curl = Upload(server, "tus", os.urandom(CHUNK)).create()
    with _stall_tus(curl, 0, **{"User-Agent": "curl/8.5.0"}) as raw:
        started = time.monotonic()
        answer = _stale_answer(raw, 10)
        took = time.monotonic() - started
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer
    assert 1.5 < took < 3.5, f"curl's silent body was cut after {took:.2f} s (0.5 x 4 s)"
