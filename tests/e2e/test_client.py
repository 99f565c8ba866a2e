"""``hmacfs upload`` / ``hmacfs download`` as processes against the real server, on both
backends: killed and rerun, the server restarted, the connection cut or silenced mid-chunk.
Every case ends with the stored blob's SHA-256 equal to the file's."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import bearer
from tests.e2e.conftest import StartServer
from tests.live import HMACFS, REPO, LiveServer
from tests.relay import Relay

MiB = 1024 * 1024
SIZE = 16 * MiB + 12345
RATE = 6 * MiB  # bytes/s through the relay while a test interrupts a transfer
PROTOCOLS = ["tus", "drive", "chunked"]


@pytest.fixture(scope="module")
def server(start_server: StartServer) -> LiveServer:
    # A request cut by the relay lets go of its chunk at once (the relay resets both sides);
    # a short body_idle bounds the wait when a reset does not reach the server.
    return start_server(timeouts={"body_idle": "5s"})


@pytest.fixture
def relay(server: LiveServer) -> Iterator[Relay]:
    found = Relay(server.port, rate=RATE)
    yield found
    found.close()


@pytest.fixture
def payload(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


def token() -> str:
    return bearer(uuid.uuid4())["Authorization"].removeprefix("Bearer ")


class Run:
    """One ``hmacfs upload`` process with --json, its events read line by line."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            [HMACFS, *args, "--json"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.events: list[dict[str, Any]] = []
        self.errors = ""

    def until(self, done_fraction: float, timeout: float = 60) -> None:
        """Read events until the progress passes ``done_fraction`` of the file."""
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"client ended early: {self.events[-3:]} {self.stderr()}")
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == "progress" and event["bytes"] >= done_fraction * event["total"]:
                return
        raise AssertionError("no progress in time")

    def finish(self, timeout: float = 120) -> int:
        out, self.errors = self.process.communicate(timeout=timeout)
        self.events += [json.loads(line) for line in out.splitlines() if line.strip()]
        return self.process.returncode

    def stderr(self) -> str:
        if self.process.returncode is None and self.process.stderr is not None:
            self.process.kill()
            self.errors = self.process.stderr.read()
        return self.errors

    def kinds(self) -> list[str]:
        return [event["event"] for event in self.events]

    def first(self, kind: str) -> dict[str, Any]:
        return next(event for event in self.events if event["event"] == kind)


def upload_args(path: Path, url: str, protocol: str, state: Path, auth: str, *extra: str) -> list[str]:
    return ["upload", str(path), "--server", url, "--token", auth, "--protocol", protocol,
            "--state-dir", str(state), "--chunk-size", str(MiB), *extra]  # fmt: skip


def stored_sha256(server: LiveServer, path: Path) -> str:
    """The SHA-256 of the blob the server stored for ``path``'s content (hashed here)."""
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    blob = server.workdir / "storage" / "blobs" / expected[:2] / expected[2:4] / expected
    deadline = time.monotonic() + 10
    while not blob.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert blob.exists(), f"no blob for {expected}"
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == expected
    return expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_killed_client_resumes_from_the_servers_offset(
    server: LiveServer, relay: Relay, payload: Path, tmp_path: Path, protocol: str
) -> None:
    auth = token()
    args = upload_args(payload, relay.url, protocol, tmp_path / "state", auth)
    first = Run(args)
    first.until(0.4)
    first.process.kill()  # SIGKILL: no chance to save anything more
    first.process.wait(10)
    assert list((tmp_path / "state").glob("*.json")), "the state file exists before the upload is done"
    relay.rate = None
    second = Run(args)
    assert second.finish() == 0, second.stderr()
    resumed = second.first("resumed")["offset"]
    assert resumed >= 0.3 * SIZE, f"resumed from {resumed}, not from the server's offset"
    assert second.first("done")["resumed_from"] == resumed
    stored_sha256(server, payload)
    assert not list((tmp_path / "state").glob("*.json")), "a finished upload leaves no state"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_upload_survives_a_server_restart(
    server: LiveServer, relay: Relay, payload: Path, tmp_path: Path, protocol: str
) -> None:
    run = Run(upload_args(payload, relay.url, protocol, tmp_path / "state", token()))
    run.until(0.3)
    server.kill()  # SIGKILL, master and workers: requests in flight die with them
    server.start()
    relay.retarget(server.port)
    relay.rate = None
    assert run.finish() == 0, run.stderr()
    assert "retry" in run.kinds()
    stored_sha256(server, payload)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_connection_cut_mid_chunk_is_resumed(
    server: LiveServer, relay: Relay, payload: Path, tmp_path: Path, protocol: str
) -> None:
    run = Run(upload_args(payload, relay.url, protocol, tmp_path / "state", token()))
    run.until(0.3)
    assert relay.cut() >= 1
    run.until(0.6)
    assert relay.cut() >= 1
    relay.rate = None
    assert run.finish() == 0, run.stderr()
    assert run.kinds().count("retry") >= 2
    assert run.first("done")["resumed_from"] == 0
    stored_sha256(server, payload)


@pytest.mark.parametrize("protocol", ["tus", "drive"])
def test_a_silenced_then_dropped_connection_is_resumed(
    server: LiveServer, relay: Relay, payload: Path, tmp_path: Path, protocol: str
) -> None:
    args = upload_args(payload, relay.url, protocol, tmp_path / "state", token(), "--stall-timeout", "2")
    args[args.index("--chunk-size") + 1] = str(8 * MiB)  # more than loopback buffers hold: still sending
    run = Run([*args, "--parallel", "1"])
    run.until(0.2)
    relay.pause()  # no FIN, no RST: only the client's own watch notices
    time.sleep(3)
    relay.cut()  # the silenced requests are gone for good, as after a network switch
    relay.resume()
    relay.rate = None
    assert run.finish() == 0, run.stderr()
    assert "retry" in run.kinds()
    stored_sha256(server, payload)


def test_download_resumes_with_range(server: LiveServer, relay: Relay, payload: Path, tmp_path: Path) -> None:
    auth = token()
    up = Run(upload_args(payload, server.url, "drive", tmp_path / "state", auth))
    assert up.finish() == 0, up.stderr()
    file_id = up.first("done")["details"]["id"]
    target = tmp_path / "copy.bin"
    args = ["download", f"{relay.url}/download/{file_id}", "-o", str(target), "--token", auth]
    relay.rate_down = RATE  # slow enough that the first download is cut midway, however busy the machine
    first = Run(args)
    first.until(0.3)
    first.process.kill()
    first.process.wait(10)
    assert (tmp_path / "copy.bin.part").stat().st_size > 0
    relay.rate = relay.rate_down = None
    second = Run(args)
    assert second.finish() == 0, second.stderr()
    assert second.first("resumed")["offset"] > 0
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(payload.read_bytes()).digest()


def test_errors_have_their_own_exit_codes(server: LiveServer, payload: Path, tmp_path: Path) -> None:
    no_token = Run(["upload", str(payload), "--server", server.url, "--protocol", "drive",
                    "--state-dir", str(tmp_path)])  # fmt: skip
    assert no_token.finish() == 3
    failed = no_token.first("failed")
    assert failed["kind"] == "not authorised" and "401" in failed["error"]
    missing = Run(["download", "00000000-0000-0000-0000-00000000abcd", "--server", server.url,
                   "--token", token()])  # fmt: skip
    assert missing.finish() == 4
    closed = Run(["upload", str(payload), "--server", "http://127.0.0.1:9", "--retries", "1",
                  "--state-dir", str(tmp_path)])  # fmt: skip
    assert closed.finish() == 10
