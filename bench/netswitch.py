"""A phone's Wi-Fi → LTE switch mid-upload: ``hmacfs upload`` beside the real third-party
tus clients, tuspy (PyPI) and tus-js-client (npm, run in Node).

Each run gets fresh network namespaces (tests/e2e/netns.py): the client uploads
48 MiB over "wlan" (tbf 40 Mbit/s) to ``hmacfs serve`` (SQLite, one worker); when
the server has received a third of it over wlan, wlan goes down with no FIN or
RST and the default route moves to "wwan" (tbf 8 Mbit/s). Measured from the
server's side, the same way for every client:

  moving    seconds from the switch until the server has received 64 KiB on
            connections from the phone's wwan address (bytes move on the new
            path; the old connection's retransmissions, which leave by wwan
            too once the route moved, do not count)
  acked     seconds from the switch until the server's tus offset passes the
            offset it had at the switch (the first byte acknowledged on the
            new path: a PATCH over wwan completed)
  finished  the client exited 0 within 120 s of the switch and the stored
            blob's SHA-256 is the file's
  uploads   tus uploads the client created (more than 1: it started again
            from zero)

Client settings: hmacfs upload as shipped (tus, the server's chunk sizes);
tuspy 5 MiB chunks, retries=10, retry_delay=1; tus-js-client 5 MiB chunks and
docs/browser.md's retryDelays [0, 1, 3, 5, 10, 20] s. Neither third-party
client has a stall timeout, so a request on the dead link waits for TCP.
Needs root (ip netns, tc) and node with ``npm ci`` done in tests/e2e/js.
``-- --rounds N`` (3) alternates the clients N times; medians are reported;
``-- --clients NAME...`` runs only some.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import bearer
from tests.e2e.netns import CLIENT_ADDRESSES, SERVER_URL, Phone, netns_available, phone, serve_in
from tests.live import HMACFS, REPO

MiB = 1024 * 1024
SIZE = 48 * MiB
CHUNK = 5 * MiB
CLIENTS = ("hmacfs upload", "tuspy", "tus-js-client")
AFTER_SWITCH = 120.0  # seconds a client gets to finish after the switch
JS = REPO / "tests" / "e2e" / "js"
_TUSPY = f"""
import sys
from tusclient import client
url, token, path = sys.argv[1:]
uploader = client.TusClient(url, headers={{"Authorization": "Bearer " + token}}).uploader(
    path, chunk_size={CHUNK}, retries=10, retry_delay=1, metadata={{"filename": "video.mp4"}})
uploader.upload()
"""


@dataclass
class Outcome:
    client: str
    moving: float | None  # seconds after the switch; None: never within the limit
    acked: float | None
    finished: bool
    uploads: int


def _commands(path: Path, token: str, state: Path) -> dict[str, list[str]]:
    auth = {"Authorization": f"Bearer {token}"}
    retry_delays = [0, 1000, 3000, 5000, 10000, 20000]
    js = {"endpoint": f"{SERVER_URL}/files/", "file": str(path), "headers": auth, "chunkSize": CHUNK,
          "retryDelays": retry_delays, "metadata": {"filename": "video.mp4"}}  # fmt: skip
    ours = [
        "--server",
        SERVER_URL,
        "--token",
        token,
        "--protocol",
        "tus",
        "--state-dir",
        str(state),
        "--json",
    ]
    return {
        "hmacfs upload": [HMACFS, "upload", str(path), *ours],
        "tuspy": [sys.executable, "-c", _TUSPY, f"{SERVER_URL}/files/", token, str(path)],
        "tus-js-client": [shutil.which("node") or "node", str(JS / "tus_upload.js"), json.dumps(js)],
    }


_SAMPLER = """
import re, subprocess, sys, time
wlan, address = sys.argv[1:]
received = {}  # the phone's port on the new link -> bytes the server received on that connection
while True:
    found = subprocess.run(["ss", "-Htin", "dst", address], capture_output=True, text=True).stdout
    peer = None
    for line in found.splitlines():
        if not line[:1].isspace():
            peer = line.split()[-1] if line.split() else None
        elif peer and (match := re.search(r"bytes_received:(\\d+)", line)):
            received[peer] = max(received.get(peer, 0), int(match.group(1)))
    with open(wlan) as counter:
        print(time.monotonic(), counter.read().strip(), sum(received.values()), flush=True)
    time.sleep(0.02)
"""

Sample = tuple[float, int, int]  # CLOCK_MONOTONIC seconds, then two counters


class _Watch:
    """Samples about every 20 ms, each with its own timestamp: in the server namespace
    (CLOCK_MONOTONIC is the same clock there), the bytes received over wlan and the bytes
    received on connections from the phone's wwan address (TCP_INFO through ``ss``: a
    connection of the old address whose packets now leave by wwan does not count);
    and the server's tus offset and upload count (its SQLite database)."""

    def __init__(self, phone_: Phone, database: Path) -> None:
        self.database = database
        self.links: list[Sample] = []  # at, wlan rx bytes, bytes from the wwan address
        self.offsets: list[Sample] = []  # at, highest tus offset, uploads created
        self._stop = threading.Event()
        tag = phone_.client.rsplit("-", 1)[1]
        wlan = f"/sys/class/net/wlan-{tag}/statistics/rx_bytes"
        self._sampler = subprocess.Popen(
            phone_.in_server(sys.executable, "-c", _SAMPLER, wlan, CLIENT_ADDRESSES["wwan"]),
            stdout=subprocess.PIPE,
            text=True,
        )
        self._threads = [
            threading.Thread(target=t, daemon=True) for t in (self._read_links, self._poll_offsets)
        ]
        for thread in self._threads:
            thread.start()

    def _read_links(self) -> None:
        assert self._sampler.stdout is not None
        for line in self._sampler.stdout:
            at, wlan, fresh = line.split()
            self.links.append((float(at), int(wlan), int(fresh)))

    def _poll_offsets(self) -> None:
        while not self._stop.wait(0.02):
            try:
                with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=0.2) as conn:
                    row = conn.execute("SELECT max(upload_offset), count(*) FROM upload_tasks").fetchone()
            except sqlite3.Error:  # not created yet, or busy for a moment
                continue
            self.offsets.append((time.monotonic(), int(row[0] or 0), int(row[1])))

    def wait_for_wlan(self, nbytes: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.links and self.links[-1][1] >= nbytes:
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self._stop.set()
        self._sampler.kill()
        self._sampler.wait()
        for thread in self._threads:
            thread.join(2)


def _last_before(samples: list[Sample], at: float) -> Sample:
    return [s for s in samples if s[0] <= at][-1]


def _first_after(samples: list[Sample], at: float, test: Callable[[Sample], bool]) -> float | None:
    return next((s[0] - at for s in samples if s[0] > at and test(s)), None)


def _one(name: str, root: Path, payload: Path, digest: str) -> Outcome:
    work = root / f"{name.replace(' ', '-')}-{uuid.uuid4().hex[:6]}"
    with phone() as made:
        server = serve_in(made, work / "server")
        token = bearer(uuid.uuid4())["Authorization"].removeprefix("Bearer ")
        command = _commands(payload, token, work / "state")[name]
        log = (work / "client.log").open("w")
        client = subprocess.Popen(made.in_client(*command), cwd=JS if "node" in command[0] else REPO,
                                  stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        watch = _Watch(made, work / "server" / "hmacfs.db")
        try:
            if not watch.wait_for_wlan(SIZE // 3, 120):
                raise RuntimeError(f"{name}: a third never arrived over wlan; see {work / 'client.log'}")
            made.switch_to_wwan()
            switched = time.monotonic()
            try:
                code = client.wait(AFTER_SWITCH)
            except subprocess.TimeoutExpired:
                code = None
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
            watch.close()
            server.stop()
        offset = _last_before(watch.offsets, switched)[1]
        moving = _first_after(watch.links, switched, lambda s: s[2] >= 64 * 1024)
        acked = _first_after(watch.offsets, switched, lambda s: s[1] > offset)
        blob = work / "server" / "storage" / "blobs" / digest[:2] / digest[2:4] / digest
        finished = code == 0 and blob.exists() and _sha256(blob) == digest
        return Outcome(name, moving, acked, finished, watch.offsets[-1][2] if watch.offsets else 0)


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(4 * MiB):
            hasher.update(block)
    return hasher.hexdigest()


def _seconds(values: list[float | None]) -> str:
    found = [v for v in values if v is not None]
    if not found:
        return f"never ({len(values)} of {len(values)} runs)"
    median = f"{statistics.median(found):.2f} s"
    return (
        median
        if len(found) == len(values)
        else f"{median} ({len(values) - len(found)} of {len(values)} never)"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench netswitch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    options = parser.parse_args(argv)
    why = netns_available()
    if why is None and not (JS / "node_modules" / "tus-js-client").is_dir():
        why = f"tus-js-client is not installed: run `npm ci` in {JS}"
    if why is not None:
        print(f"netswitch: {why}")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-netswitch-") as temp:
        root = Path(temp)
        payload = root / "video.mp4"
        payload.write_bytes(os.urandom(SIZE))
        digest = _sha256(payload)
        outcomes: list[Outcome] = []
        print(f"{SIZE // MiB} MiB over wlan 40 Mbit/s, switched to wwan 8 Mbit/s at a third, "
              f"{options.rounds} rounds")  # fmt: skip
        for number in range(options.rounds):
            for name in options.clients:
                outcomes.append(_one(name, root, payload, digest))
                print(f"  round {number + 1} {_line(outcomes[-1])}")
                sys.stdout.flush()
        _table(outcomes)
    return 0


def _line(outcome: Outcome) -> str:
    moving = "never" if outcome.moving is None else f"{outcome.moving:.2f} s"
    acked = "never" if outcome.acked is None else f"{outcome.acked:.2f} s"
    return (f"{outcome.client:14s} moving {moving:>8s}  acked {acked:>8s}  "
            f"finished {'yes' if outcome.finished else 'no':3s}  uploads {outcome.uploads}")  # fmt: skip


def _table(outcomes: list[Outcome]) -> None:
    print("| client | bytes move on wwan (median) | first byte acknowledged on wwan (median) "
          "| finished | uploads created |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for name in dict.fromkeys(o.client for o in outcomes):
        mine = [o for o in outcomes if o.client == name]
        done = sum(o.finished for o in mine)
        uploads = "/".join(str(o.uploads) for o in mine)
        print(f"| {name} | {_seconds([o.moving for o in mine])} | {_seconds([o.acked for o in mine])} "
              f"| {done}/{len(mine)} | {uploads} |")  # fmt: skip
    sys.stdout.flush()
