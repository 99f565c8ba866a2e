"""Resumable uploads against the real server (gunicorn + gevent, PostgreSQL, 2 workers).

Contenders, alternated round by round on the same server:
  single   our single PUT: the whole file in one XEP-0363 signed PUT
  tus1     the whole file in one tus creation-with-upload request
  drive1   Drive API, 5 MiB chunks over 1 connection, then complete (hash verified)
  drive4   the same over 4 parallel connections
  tus      tus creation, then 5 MiB PATCHes
  nginx    nginx's own single PUT (dav module) to local disk, when nginx is installed
  tusnode  @tus/server 2.x with @tus/file-store (Node), the same 5 MiB PATCHes (no hash, no fsync)
  tusnode1 @tus/server: the whole file in one creation-with-upload request, beside tus1
  tusnf    our tus PATCHes on a second server with [storage] fsync = false, beside tusnode
  old-NAME the same contender on a second server run from another checkout (``--old-tree``),
           for telling a regression from a loaded machine in one run
Then: RSS growth of the server over one large upload, and many concurrent uploads.

``python -m bench resumable -- --quick`` for a smoke run; ``-- --only drive1,tus`` runs
just those contenders against the single PUT (the table only).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._tus_peer import start_tus_peer
from bench._upload_clients import (
    MiB,
    Source,
    drive_upload,
    nginx_put,
    tree_rss,
    tus_patches,
    tus_single,
    xep_put,
)
from bench._xep_servers import ensure_nginx
from tests.conftest import HMAC_SECRET, bearer
from tests.live import LiveServer
from tests.pg import PgServer, find_server, free_port

GiB = 1024 * MiB


def _options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench resumable")
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-nginx", action="store_true")
    parser.add_argument(
        "--no-tus-peer", action="store_true", help="without @tus/server and the no-fsync server"
    )
    parser.add_argument("--size-mib", type=int, default=None, help="override the main upload size")
    parser.add_argument(
        "--only", default=None, help="comma-separated contenders; only their table (for quick comparisons)"
    )
    parser.add_argument(
        "--old-tree",
        type=Path,
        default=None,
        help="a checkout of older code (git worktree) to run as a second server: adds old-NAME contenders",
    )
    options = parser.parse_args(argv)
    quick = options.quick
    options.size = 64 * MiB if quick else GiB
    options.rss_size = 256 * MiB if quick else 4 * GiB
    options.many, options.many_size = (20, 10 * MiB) if quick else (200, 20 * MiB)
    options.rounds = options.rounds or (2 if quick else 3)
    if options.size_mib:
        options.size = options.size_mib * MiB
    return options


class _TreeServer(LiveServer):
    """A server run from another checkout with this venv: its package comes first on the path
    (the editable install's finder comes after PYTHONPATH), and its migrations with it."""

    tree: Path = Path()

    def configure(self) -> None:
        """Only the keys the old code knows: older code refuses the newer ones. A tree that
        knows ``[rate_limit]`` keeps it off as the new server has it: on, each request
        took a token from a database bucket (a round trip), which the new server did not."""
        super().configure()
        text = self.config_path.read_text()
        known = (self.tree / "hmacfs" / "config.py").read_text()
        stale = [] if "trusted_hosts" in known else ['trusted_hosts = ["127.0.0.1", "localhost"]']
        if "rate_limit" not in known:
            stale += ["[rate_limit]", "enabled = false"]
        for line in stale:
            text = text.replace(line + "\n", "")
        self.config_path.write_text(text)

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "PYTHONPATH": str(self.tree)}


def _start_nginx(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (root / "data").mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(
        f"""user root; worker_processes 1; daemon off; pid {root}/nginx.pid; error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {root}/tmp; client_max_body_size 0;
  server {{ listen 127.0.0.1:{port}; root {root}/data; dav_methods PUT DELETE; create_full_put_path on; }} }}
"""
    )
    process = subprocess.Popen([ensure_nginx(), "-c", str(conf), "-p", str(root)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return process, f"http://127.0.0.1:{port}"


def _round_robin(
    contenders: dict[str, Callable[[], float]], rounds: int, size: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in contenders}
    shuffler = random.Random(20261125)  # the same orders every run
    for number in range(rounds):
        # A new order every round, so no contender keeps a place or a neighbour: the
        # first upload of a round ran up to 2.5x slower than later ones here, and a
        # plain rotation kept neighbours (tus1 always ran right after the single PUT,
        # in whatever page-cache state that one left).
        order = list(contenders)
        shuffler.shuffle(order)
        for name in order:
            os.sync()  # start from clean writeback: the previous upload's dirty pages throttle this one
            _drop_page_cache()
            times[name].append(contenders[name]())
            rate = size / MiB / times[name][-1]
            print(f"  round {number + 1} {name:7s} {times[name][-1]:7.2f} s  {rate:7.0f} MiB/s")
    return times


def _drop_page_cache() -> None:
    """Start every upload from the same page-cache state where allowed (root): what the
    previous upload left cached or freed moved single uploads of 1 GiB 2-3x here."""
    try:
        with open("/proc/sys/vm/drop_caches", "w") as control:
            control.write("1")
    except OSError:
        pass


def _table(times: dict[str, list[float]], size: int, baseline: str) -> list[str]:
    """Medians, and throughput against ``baseline`` two ways: the ratio of the medians and
    the median of the per-round ratios (paired: each round's contenders ran back to back,
    so the machine's slow and fast phases cancel)."""
    base = statistics.median(times[baseline])
    lines = [
        "| contender | median s | MiB/s | vs single (ratio of medians) | vs single (paired, median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        paired = statistics.median(b / v for b, v in zip(times[baseline], values, strict=True))
        lines.append(
            f"| {name} | {median:.2f} | {size / MiB / median:.0f} | {base / median:.2f}x | {paired:.2f}x |"
        )
    return lines


def _rss_growth(server: LiveServer, size: int) -> tuple[int, int]:
    assert server.process is not None
    baseline = tree_rss(server.process.pid)
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], tree_rss(server.process.pid if server.process else 0))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        drive_upload(server.url, bearer(uuid.uuid4()), Source.make(size), 4)
        tus_single(server.url, bearer(uuid.uuid4()), Source.make(size))
    finally:
        stop.set()
        sampler.join()
    return baseline, peak[0]


def _many(server: LiveServer, count: int, size: int) -> tuple[int, float]:
    seed = Source.make(size).seed
    sources = [Source.make(size, label=uuid.uuid4().bytes, seed=seed) for _ in range(count)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda s: drive_upload(server.url, bearer(uuid.uuid4()), s, 1), sources))
    return len(results), time.perf_counter() - started


def main(argv: list[str]) -> int:
    options = _options(argv)
    pg: PgServer | None = find_server()
    if pg is None:
        print("PostgreSQL not found: this benchmark needs it")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-resumable-") as temp:
        root = Path(temp)
        server = LiveServer(root / "server", pg.create_database("hmacfs_bench"), workers=2)
        nofsync = LiveServer(
            root / "nofsync",
            pg.create_database("hmacfs_bench"),
            workers=2,
            sections={"storage": {"fsync": False}},
        )
        old = _TreeServer(root / "old", pg.create_database("hmacfs_bench"), workers=2)
        old.tree = options.old_tree or Path()
        nginx = None if options.no_nginx else _start_nginx(root / "nginx")
        peer = None if options.no_tus_peer else start_tus_peer(root / "tus-peer")
        try:
            server.start()
            if peer:
                nofsync.start()
            if options.old_tree:
                old.start()
            tus_peers = (peer[1], nofsync.url) if peer else None
            old_url = old.url if options.old_tree else None
            _run(options, server, nginx[1] if nginx else None, tus_peers, old_url)
        finally:
            server.stop()
            nofsync.stop()
            old.stop()
            for process in (nginx[0] if nginx else None, peer[0] if peer else None):
                if process is not None:
                    process.terminate()
                    process.wait(10)
            pg.drop_databases()
    return 0


def _old_contenders(url: str, source: Source, names: set[str]) -> dict[str, Callable[[], float]]:
    """The chunked contenders among ``names`` again, on the old checkout's server."""
    runs: dict[str, Callable[[], float]] = {
        "old-drive1": lambda: drive_upload(url, bearer(uuid.uuid4()), source, 1).total,
        "old-drive4": lambda: drive_upload(url, bearer(uuid.uuid4()), source, 4).total,
        "old-tus": lambda: tus_patches(url, bearer(uuid.uuid4()), source),
        "old-single": lambda: xep_put(url, HMAC_SECRET, source),
    }
    return {name: run for name, run in runs.items() if name.removeprefix("old-") in names}


def _run(
    options: argparse.Namespace,
    server: LiveServer,
    nginx: str | None,
    tus_peers: tuple[str, str] | None,
    old: str | None,
) -> None:
    size = options.size
    source = Source.make(size)
    url = server.url
    contenders: dict[str, Callable[[], float]] = {
        "single": lambda: xep_put(url, HMAC_SECRET, source),
        "tus1": lambda: tus_single(url, bearer(uuid.uuid4()), source),
        "drive1": lambda: drive_upload(url, bearer(uuid.uuid4()), source, 1).total,
        "drive4": lambda: drive_upload(url, bearer(uuid.uuid4()), source, 4).total,
        "tus": lambda: tus_patches(url, bearer(uuid.uuid4()), source),
    }
    if nginx:
        contenders["nginx"] = lambda: nginx_put(nginx, source, f"{uuid.uuid4().hex}.bin")
    if tus_peers:
        peer, nofsync = tus_peers
        contenders["tusnode"] = lambda: tus_patches(peer, {}, source)
        contenders["tusnode1"] = lambda: tus_single(peer, {}, source)
        contenders["tusnf"] = lambda: tus_patches(nofsync, bearer(uuid.uuid4()), source)
    if options.only:
        names = {"single", *options.only.split(",")}
        contenders = {name: run for name, run in contenders.items() if name in names}
    if old:
        contenders.update(_old_contenders(old, source, set(contenders)))
    print(f"upload of {size / MiB:.0f} MiB, {options.rounds} rounds")
    tus_single(url, bearer(uuid.uuid4()), Source.make(8 * MiB))  # warm-up
    times = _round_robin(contenders, options.rounds, size)
    print("\n".join(_table(times, size, "single")))
    for name, peer_name in (("tus", "tusnode"), ("tusnf", "tusnode"), ("tus1", "tusnode1")):
        if name in times and peer_name in times:
            paired = statistics.median(p / t for p, t in zip(times[peer_name], times[name], strict=True))
            print(f"{name} / @tus/server {peer_name} (throughput, paired median): {paired:.2f}x")
    for name in times:
        if name.startswith("old-"):
            new = name.removeprefix("old-")
            paired = statistics.median(o / n for o, n in zip(times[name], times[new], strict=True))
            print(f"{new}: new / old throughput (paired median): {paired:.2f}x")
    if options.only:
        return
    completes = [drive_upload(url, bearer(uuid.uuid4()), source, 4).complete for _ in range(options.rounds)]
    print(f"complete (hash + promote) of {size / MiB:.0f} MiB: median {statistics.median(completes):.2f} s")
    before, peak = _rss_growth(server, options.rss_size)
    rss = (
        f"baseline {before / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB, growth {(peak - before) / MiB:.1f} MiB"
    )
    print(
        f"RSS over a {options.rss_size / MiB:.0f} MiB upload (Drive 4 streams, then one tus request): {rss}"
    )
    count, elapsed = _many(server, options.many, options.many_size)
    many = f"{count} concurrent Drive uploads of {options.many_size / MiB:.0f} MiB"
    print(f"{many}: all complete, hashes verified, {elapsed:.1f} s")
