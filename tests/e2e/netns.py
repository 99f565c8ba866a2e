"""A phone's two links, in network namespaces the test makes (and always removes).

``server`` namespace: the hmacfs server, reached at ``SERVER_ADDRESS`` (on its
loopback) over either link. ``client`` namespace: two veth links to it, "wlan"
and "wwan", each rate limited with tc ``tbf`` on the client's side (uploads go
that way). Traffic never leaves these two namespaces.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.live import HMACFS, REPO, LiveServer

SERVER_ADDRESS = "10.231.9.1"
SERVER_PORT = 8080
SERVER_URL = f"http://{SERVER_ADDRESS}:{SERVER_PORT}"
_LINKS = {"wlan": ("10.231.1", "40mbit"), "wwan": ("10.231.2", "8mbit")}
CLIENT_ADDRESSES = {name: f"{prefix}.2" for name, (prefix, _) in _LINKS.items()}  # the phone's, per link


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def netns_available() -> str | None:
    """None when namespaces and veths can be made here, else why not."""
    probe = f"hfs-probe-{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
        _ip("netns", "del", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"cannot make network namespaces: {exc}"
    return None


@dataclass(frozen=True)
class Phone:
    server: str  # namespace names
    client: str

    def in_client(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.client, *command]

    def in_server(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.server, *command]

    def rx_bytes(self, link: str) -> int:
        """Bytes the server's end of ``link`` ("wlan" or "wwan") has received."""
        peer = f"{link}-{self.client.rsplit('-', 1)[1]}"
        found = subprocess.run(self.in_server("cat", f"/sys/class/net/{peer}/statistics/rx_bytes"),
                               capture_output=True, text=True, check=True, timeout=10)  # fmt: skip
        return int(found.stdout)

    def switch_to_wwan(self) -> None:
        """wlan goes down (no FIN, no RST reaches the server) and the default route moves to wwan."""
        _ip("-n", self.client, "link", "set", "wlan", "down")
        _ip("-n", self.client, "route", "replace", "default", "via", f"{_LINKS['wwan'][0]}.1", "dev", "wwan")


@contextmanager
def phone() -> Iterator[Phone]:
    tag = uuid.uuid4().hex[:6]
    made = Phone(server=f"hfs-srv-{tag}", client=f"hfs-cli-{tag}")
    try:
        for namespace in (made.server, made.client):
            _ip("netns", "add", namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", made.server, "address", "add", f"{SERVER_ADDRESS}/32", "dev", "lo")
        for name, (prefix, rate) in _LINKS.items():
            peer = f"{name}-{tag}"
            _ip(
                "-n",
                made.client,
                "link",
                "add",
                name,
                "type",
                "veth",
                "peer",
                "name",
                peer,
                "netns",
                made.server,
            )
            _ip("-n", made.client, "address", "add", f"{prefix}.2/24", "dev", name)
            _ip("-n", made.server, "address", "add", f"{prefix}.1/24", "dev", peer)
            _ip("-n", made.client, "link", "set", name, "up")
            _ip("-n", made.server, "link", "set", peer, "up")
            subprocess.run(
                ["ip", "netns", "exec", made.client, "tc", "qdisc", "add", "dev", name, "root",
                 "tbf", "rate", rate, "burst", "64kb", "latency", "50ms"],
                check=True, capture_output=True, timeout=10,
            )  # fmt: skip
        _ip("-n", made.client, "route", "add", "default", "via", f"{_LINKS['wlan'][0]}.1", "dev", "wlan")
        yield made
    finally:
        for namespace in (made.client, made.server):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10, check=False)


def serve_in(
    namespaced: Phone, workdir: Path, sections: dict[str, dict[str, object]] | None = None
) -> LiveServer:
    """``hmacfs serve`` (one worker, SQLite: PostgreSQL is not reachable from there) in the
    server namespace on ``SERVER_ADDRESS:SERVER_PORT``; returns once /health answers."""
    server = LiveServer(workdir, f"sqlite:///{workdir / 'hmacfs.db'}", workers=1, sections=sections or {})
    server.configure()
    server.cli("db", "upgrade")
    server.port = SERVER_PORT
    log = (workdir / "server.log").open("ab")
    server.process = subprocess.Popen(
        namespaced.in_server(HMACFS, "serve", "--bind", f"0.0.0.0:{SERVER_PORT}", "--workers", "1"),
        cwd=REPO, env=server.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    health = f"http://127.0.0.1:{SERVER_PORT}/health"
    probe = f"import urllib.request; urllib.request.urlopen('{health}', timeout=1)"
    deadline = time.monotonic() + 60
    while subprocess.run(namespaced.in_server("python3", "-c", probe), capture_output=True).returncode:
        assert server.process.poll() is None and time.monotonic() < deadline, server.log()
        time.sleep(0.2)
    return server
