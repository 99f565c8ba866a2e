"""The interface monitor in network namespaces: an interface of the server's namespace goes
down and one ``network.changed`` is published, whatever the number of workers, to the
``events_account``: its /ws subscribers and the webhooks get it, a user's /ws does not,
and the change is counted in /metrics.

The server runs inside a namespace this test creates, with a veth pair to a second
one ("wlan0" in the server's, "ap0" in the peer's) and its default route over it. It
reaches PostgreSQL through the Unix socket (filesystem, not network), so no traffic
leaves the namespaces; SQLite is a file. The event is read from the events table, and
from a webhook receiver and two /ws subscribers run in the server's namespace
(tests/e2e/netns_listener.py).
Needs root and iproute2 (skipped otherwise); the namespaces are deleted even on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import bearer, new_database_url
from tests.live import HMACFS, REPO, LiveServer
from tests.pg import PgServer

pytestmark = pytest.mark.e2e

POLL = 0.2  # network_resilience.interface_poll_interval in this test
OPERATOR = uuid.UUID("0b5e7a70-0000-4000-8000-00000000000e")  # network_resilience.events_account
HOOK_PORT = 8091  # the webhook receiver, on the namespace's loopback
PG_SOCKET_DIR = "/var/run/postgresql"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=10, capture_output=True)


@pytest.fixture
def namespaces() -> Iterator[str]:
    """The server's namespace (its peer namespace made too), deleted afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    tag = uuid.uuid4().hex[:6]
    server, peer = f"hmfs-s-{tag}", f"hmfs-p-{tag}"
    made: list[str] = []
    try:
        for name in (server, peer):
            _ip("netns", "add", name)
            made.append(name)
        _ip("-n", server, "link", "add", "wlan0", "type", "veth", "peer", "name", "ap0", "netns", peer)
        _ip("-n", server, "addr", "add", "10.201.0.1/24", "dev", "wlan0")
        _ip("-n", peer, "addr", "add", "10.201.0.2/24", "dev", "ap0")
        for namespace, link in ((server, "lo"), (server, "wlan0"), (peer, "lo"), (peer, "ap0")):
            _ip("-n", namespace, "link", "set", link, "up")
        _ip("-n", server, "route", "add", "default", "via", "10.201.0.2", "dev", "wlan0")
        yield server
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], timeout=10, check=False)


def _database(e2e_backend: str, pg_server: PgServer | None, workdir: Path) -> tuple[str, str]:
    """(URL the server uses, URL the test reads with): PostgreSQL over its Unix socket."""
    url = new_database_url(e2e_backend, pg_server, workdir)
    if not url.startswith("postgresql"):
        return url, url
    if not Path(PG_SOCKET_DIR, ".s.PGSQL.5432").exists():
        pytest.skip("PostgreSQL's Unix socket is not there")
    parsed = sa.engine.make_url(url)
    return parsed.set(host="", port=None, query={"host": PG_SOCKET_DIR}).render_as_string(False), url


def _serve_in(namespace: str, server: LiveServer) -> subprocess.Popen[bytes]:
    server.configure()
    server.cli("db", "upgrade")
    log = (server.workdir / "server.log").open("ab")
    command = ["ip", "netns", "exec", namespace, HMACFS, "serve", "--bind", "127.0.0.1:8080",
               "--workers", str(server.workers)]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, env=server.env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def _wait_for(predicate: Any, limit: float, what: str, server: LiveServer) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} after {limit} s:\n{server.log()}"
        time.sleep(0.05)


def _published(url: str) -> list[Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            query = sa.text("SELECT data FROM events WHERE type = 'network.changed' ORDER BY id")
            return list(connection.execute(query).scalars())
    finally:
        engine.dispose()


def _listen_in(namespace: str, out: Path) -> subprocess.Popen[bytes]:
    """The webhook receiver and the operator's and a user's /ws, inside ``namespace``."""
    tokens = [f"{name}={bearer(account)['Authorization'].removeprefix('Bearer ')}"
              for name, account in (("operator", OPERATOR), ("user", uuid.uuid4()))]  # fmt: skip
    command = ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.e2e.netns_listener", str(out),
               "ws://127.0.0.1:8080/ws", str(HOOK_PORT), *tokens]  # fmt: skip
    return subprocess.Popen(command, cwd=REPO, stderr=(out.parent / "listener.log").open("ab"))


def _heard(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def _network_changed(out: Path, via: str) -> list[dict[str, Any]]:
    return [line["message"] for line in _heard(out)
            if line["via"] == via and line["message"].get("type") == "network.changed"]  # fmt: skip


def _webhook_started(url: str) -> bool:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM webhook_cursors")).scalar_one() > 0
    finally:
        engine.dispose()


def _metrics_in(namespace: str) -> str:
    fetch = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/metrics').read().decode())"
    done = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", fetch],
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    return done.stdout


def test_an_interface_going_down_publishes_network_changed(
    namespaces: str, e2e_backend: str, pg_server: PgServer | None, tmp_path: Path
) -> None:
    served, read = _database(e2e_backend, pg_server, tmp_path)
    workers = 2 if served.startswith("postgresql") else 1
    hook = {"url": f"http://127.0.0.1:{HOOK_PORT}/hook", "secret": "s", "types": ["network.*"]}
    poll = f"{int(POLL * 1000)}ms"
    server = LiveServer(tmp_path, served, workers=workers, sections={
        "network_resilience": {"interface_poll_interval": poll, "events_account": str(OPERATOR)},
        "events": {"webhooks": [hook], "webhook_backoff": "100ms"},
    })  # fmt: skip
    heard = tmp_path / "heard.jsonl"
    process = _serve_in(namespaces, server)
    listener = None
    try:
        _wait_for(lambda: "Interface monitor started" in server.log(), 60, "monitor", server)
        assert "wlan0" in server.log()  # it sees the namespace's interfaces
        listener = _listen_in(namespaces, heard)
        _wait_for(lambda: any(line["via"] == "ready" for line in _heard(heard)), 60, "subscribers", server)
        _wait_for(lambda: _webhook_started(read), 30, "webhook deliverer", server)
        time.sleep(3 * POLL)  # the other worker, if any, has tried the node's lock by now
        _ip("-n", namespaces, "link", "set", "wlan0", "down")
        started = time.monotonic()
        _wait_for(lambda: _published(read), 10, "network.changed", server)
        took = time.monotonic() - started
        _wait_for(lambda: _network_changed(heard, "ws:operator"), 10, "network.changed on /ws", server)
        _wait_for(lambda: _network_changed(heard, "webhook"), 30, "network.changed webhook", server)
        time.sleep(3 * POLL)  # a second monitor would have published its own by now
        [data] = [item if isinstance(item, dict) else json.loads(item) for item in _published(read)]
        metrics = _metrics_in(namespaces)
    finally:
        if listener is not None:
            listener.kill()
            listener.wait(10)
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    assert {"kind": "link_down", "interface": "wlan0"} in data["changes"]
    assert {"kind": "default_route", "interface": None, "old": "wlan0", "new": None} in data["changes"]
    assert data["interfaces"]["wlan0"]["up"] is False and data["interfaces"]["wlan0"]["class"] == "wifi"
    assert "Network change detected" in server.log()
    assert took < 2 * POLL + 1.0, f"detected after {took:.2f} s"
    [on_ws] = _network_changed(heard, "ws:operator")
    [on_hook] = _network_changed(heard, "webhook")
    assert on_ws["data"] == on_hook["data"] == data
    assert _network_changed(heard, "ws:user") == []  # a user's account never sees the operator's network
    assert 'hmacfs_network_interface_changes_total{kind="link_down"} 1.0' in metrics, metrics
    print(f"\n[{e2e_backend}] network.changed {took * 1000:.0f} ms after the link went down")
