"""Fixed against adaptive chunk and buffer sizes over emulated links, and memory under
1,000 trickling uploads (issue 14). ``make bench SUITES=adaptive``; root (netns, tc).

Links (bench/_links.py): a client in its own network namespace behind a veth pair
with ``tc tbf`` on its upload direction, through a user-space relay that adds
latency and resets connections:
  lan   no namespace: loopback straight to the server (the fast link's upper bound)
  wifi  tbf 40 Mbit/s, 5 ms each way
  lte   tbf 8 Mbit/s, 30 ms each way, every connection reset every 10 s
Each arm is a fresh server (gunicorn+gevent, PostgreSQL, 1 worker): ``fixed``
(performance.adaptive_uploads = false: 5 MiB chunks, 1 MiB buffers) or ``adaptive``.
A client uploads COUNT files of 5 MiB one after another with the Drive API,
taking the recommended chunk size and retrying a cut chunk; goodput is file
bytes ÷ seconds from create to complete over the uploads after WARMUP.

Memory: 1,000 connections each send an XEP-0363 PUT head (1 MiB declared) and then
one byte a second, while one 1 GiB PUT runs; server RSS growth over the run, and
the 1 GiB PUT's throughput against the same PUT alone.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench._links import NS, DelayRelay, namespace, shape
from bench._upload_clients import MiB, Source, xep_put
from tests.conftest import HMAC_SECRET
from tests.live import LiveServer
from tests.pg import PgServer, find_server

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
LINKS = {  # name: (tbf Mbit/s, one-way delay s, cut every s); --links picks some
    "lan": (None, 0.0, None),
    "wifi": (40.0, 0.005, None),
    "lte": (8.0, 0.030, 10.0),
}
ARMS = {"adaptive": {}, "fixed": {"adaptive_uploads": False}}


def _options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench adaptive")
    parser.add_argument("--count", type=int, default=8, help="uploads per link and arm")
    parser.add_argument("--warmup", type=int, default=2, help="first uploads not counted")
    parser.add_argument("--size-mib", type=int, default=5)
    parser.add_argument("--trickle", type=int, default=1000, help="concurrent trickling uploads")
    parser.add_argument("--big-mib", type=int, default=1024, help="the fast upload beside them")
    parser.add_argument("--memory-rounds", type=int, default=3, help="alone/beside rounds of the big upload")
    parser.add_argument("--only", default="", help="links,memory (comma-separated parts)")
    parser.add_argument("--links", default=",".join(LINKS), help="which links (comma-separated)")
    return parser.parse_args(argv)


def _server(pg: PgServer, root: Path, arm: str) -> LiveServer:
    sections: dict[str, dict[str, Any]] = {
        "performance": ARMS[arm],
        "uploads": {"max_chunk_size": "16MB"},
        "server": {"worker_connections": 4096, "trusted_hosts": ["127.0.0.1", "localhost"]},
        "metrics": {"enabled": True},
    }
    database = pg.create_database(f"hmacfs_adaptive_{arm}_{uuid.uuid4().hex[:6]}")
    return LiveServer(
        root / f"server-{arm}-{uuid.uuid4().hex[:6]}", database, workers=1, sections=sections
    ).start()


def _client(base: str, client_id: str, size: int, count: int, in_namespace: bool) -> list[dict[str, Any]]:
    argv = [sys.executable, "-m", "bench._adaptive_client", base, client_id, str(size), str(count)]
    if in_namespace:
        argv = ["ip", "netns", "exec", NS, *argv]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode:
        raise RuntimeError(f"client {client_id} failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def run_links(pg: PgServer, root: Path, options: argparse.Namespace) -> dict[str, Any]:
    size = options.size_mib * MiB
    results: dict[str, Any] = {}
    with namespace():
        for arm in ARMS:
            server = _server(pg, root, arm)
            try:
                for link in options.links.split(","):
                    rate, delay, cut = LINKS[link]
                    results[f"{link}/{arm}"] = _one_link(
                        server, f"{link}-{arm}", (rate, delay, cut), size, options
                    )
                    print(f"  {link:5} {arm:8} {_summary(results[f'{link}/{arm}'])}", flush=True)
            finally:
                server.stop()
    return results


def _one_link(
    server: LiveServer,
    client_id: str,
    shaping: tuple[float | None, float, float | None],
    size: int,
    options: argparse.Namespace,
) -> dict[str, Any]:
    rate, delay, cut = shaping
    if rate is None:
        uploads = _client(server.url, client_id, size, options.count, in_namespace=False)
        return _tally(uploads, options.warmup, cuts=0)
    shape(rate)
    relay = DelayRelay(server.port, delay, cut)
    try:
        uploads = _client(relay.url, client_id, size, options.count, in_namespace=True)
    finally:
        relay.close()
        shape(None)
    return _tally(uploads, options.warmup, cuts=relay.cuts)


def _tally(uploads: list[dict[str, Any]], warmup: int, cuts: int) -> dict[str, Any]:
    counted = uploads[warmup:]
    seconds = sum(u["seconds"] for u in counted)
    return {
        "uploads": uploads,
        "goodput_mib_s": sum(u["size"] for u in counted) / seconds / MiB,
        "median_seconds": statistics.median(u["seconds"] for u in counted),
        "resent_mib": sum(u["resent"] for u in counted) / MiB,
        "failed_attempts": sum(u["failures"] for u in counted),
        "chunk_sizes_kib": sorted({u["chunk_size"] // 1024 for u in counted}),
        "cuts": cuts,
    }


def _summary(row: dict[str, Any]) -> str:
    return (
        f"goodput {row['goodput_mib_s']:.2f} MiB/s, re-sent {row['resent_mib']:.1f} MiB, "
        f"chunks {row['chunk_sizes_kib']} KiB, {row['failed_attempts']} failed attempts, {row['cuts']} cuts"
    )


# -- memory under trickling uploads ---------------------------------------------------------


class Tricklers:
    """``count`` XEP-0363 PUTs of 1 MiB declared, each sending one byte a second (bounded)."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()

    def open(self) -> None:
        size = MiB
        for _ in range(self.count):
            path = f"trickle/{uuid.uuid4().hex}.bin"
            signature = hmac.new(HMAC_SECRET.encode(), f"{path} {size}".encode(), hashlib.sha256).hexdigest()
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            head = f"PUT /upload/{path}?v={signature} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"
            sock.sendall(head.encode() + b"x")
            sock.setblocking(False)
            self.sockets.append(sock)
        threading.Thread(target=self._drip, daemon=True).start()

    def _drip(self) -> None:
        deadline = time.monotonic() + 600
        while not self._stop.wait(1.0) and time.monotonic() < deadline:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b"x")

    def close(self) -> None:
        self._stop.set()
        for sock in self.sockets:
            sock.close()


def _worker_rss(server: LiveServer) -> int:
    """Anonymous resident bytes (heap, buffers, stacks) of the server's processes: file
    pages mapped while a completed upload is hashed would count the file itself."""
    assert server.process is not None
    total = 0
    for pid in [server.process.pid, *_children(server.process.pid)]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("RssAnon:"):
                total += int(line.split()[1]) * 1024
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_memory(pg: PgServer, root: Path, options: argparse.Namespace) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, options.trickle + 256)), hard))
    big = Source.make(options.big_mib * MiB)
    results: dict[str, Any] = {}
    for arm in ARMS:
        server = _server(pg, root, arm)
        try:
            results[arm] = _memory_arm(server, big, options.trickle, options.memory_rounds)
        finally:
            server.stop()
        print(f"  memory {arm:8} {results[arm]}", flush=True)
    return results


def _memory_arm(server: LiveServer, big: Source, count: int, rounds: int) -> dict[str, Any]:
    """The big PUT alone and beside ``count`` tricklers, alternating for ``rounds`` rounds
    (medians and per-round ratios, so neither side gets the quieter moments of a shared
    machine), after one
    untimed warm-up PUT; RSS growth is the peak during the rounds beside the tricklers.
    A refused PUT beside them (the fixed arm's tricklers spend the budget: 503, or a reset
    when the server answers before the body is sent) ends the rounds."""
    xep_put(server.url, HMAC_SECRET, big)
    baseline = _worker_rss(server)
    solos: list[float] = []
    besides: list[float] = []
    peak = [baseline]
    refused = ""
    for round_ in range(rounds):
        # Each timed PUT follows 3 s without one (the disk's write-back of the last PUT
        # must not fall on one side only), and the order flips every round.
        for side in ("solo", "beside") if round_ % 2 == 0 else ("beside", "solo"):
            time.sleep(3)
            if side == "solo":
                solos.append(big.size / xep_put(server.url, HMAC_SECRET, big) / MiB)
                continue
            beside, refused = _beside_tricklers(server, big, count, peak)
            if refused:
                break
            besides.append(beside)
        if refused:
            break
    solo = statistics.median(solos)
    beside_median = statistics.median(besides) if besides else 0.0
    return {
        "solo_mib_s": solo, "beside_mib_s": beside_median, "ratio": beside_median / solo,
        "solo_rounds": solos, "beside_rounds": besides,
        "round_ratios": [b / a for a, b in zip(solos, besides, strict=False)],
        "rss_growth_mib": (max(peak) - baseline) / MiB, "baseline_rss_mib": baseline / MiB,
        "tricklers": count, "refused": refused,
    }  # fmt: skip


def _beside_tricklers(server: LiveServer, big: Source, count: int, peak: list[int]) -> tuple[float, str]:
    """One big PUT while ``count`` tricklers send, sampling RSS into ``peak``; (MiB/s, why
    it was refused or "")."""
    tricklers = Tricklers(server.port, count)
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.2):
            peak.append(_worker_rss(server))

    threading.Thread(target=sample, daemon=True).start()
    try:
        tricklers.open()
        time.sleep(3)
        try:
            return big.size / xep_put(server.url, HMAC_SECRET, big) / MiB, ""
        except (RuntimeError, OSError) as exc:
            return 0.0, f"{type(exc).__name__}: {exc}"[:200]
        finally:
            time.sleep(2)
    finally:
        sampling.set()
        tricklers.close()


def main(argv: list[str]) -> int:
    options = _options(argv)
    if os.geteuid() != 0:
        print("bench adaptive needs root (ip netns, tc)")
        return 2
    pg = find_server()
    if pg is None:
        print("bench adaptive needs PostgreSQL on 127.0.0.1:5432")
        return 2
    parts = set(filter(None, options.only.split(","))) or {"links", "memory"}
    out = RESULTS / "adaptive.json"
    # A run of one part (--only) keeps the other part's last results beside its own.
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    results["options"] = vars(options)
    with tempfile.TemporaryDirectory(prefix="hmacfs-bench-adaptive-") as tmp:
        if "links" in parts:
            results["links"] = run_links(pg, Path(tmp), options)
        if "memory" in parts:
            results["memory"] = run_memory(pg, Path(tmp), options)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    if {"links", "memory"} <= results.keys():
        plot(results, REPO / "docs" / "benchmarks-adaptive.png")
        print(f"results in {out}, plot in docs/benchmarks-adaptive.png")
    else:  # a plot of one part would drop the other's panel from the committed one
        print(f"results in {out}; docs/benchmarks-adaptive.png kept (it needs both parts)")
    return 0


def plot(results: dict[str, Any], target: Path) -> None:
    """Goodput per link and arm (bars) and the 1 GiB PUT beside the tricklers, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    links = results.get("links", {})
    names = [name for name in LINKS if f"{name}/fixed" in links]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.38
    for offset, arm in ((-width / 2, "fixed"), (width / 2, "adaptive")):
        values = [links[f"{name}/{arm}"]["goodput_mib_s"] for name in names]
        left.bar([i + offset for i in range(len(names))], values, width, label=arm)
    left.set_xticks(range(len(names)), names)
    left.set_yscale("log")
    left.set_ylabel("goodput, MiB/s (log)")
    left.set_title("5 MiB uploads, Drive API")
    left.legend()
    memory = results.get("memory", {})
    arms = [arm for arm in ARMS if arm in memory]
    right.bar(
        arms, [memory[arm]["rss_growth_mib"] for arm in arms], color=["tab:blue", "tab:orange"][: len(arms)]
    )
    right.axhline(64, color="red", linestyle="--", label="target: 64 MiB")
    right.set_ylabel("server RSS growth, MiB")
    right.set_title(f"{memory[arms[0]]['tricklers'] if arms else 0} trickling uploads + 1 GiB PUT")
    right.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=100)
