"""``hmacfs upload`` against the benchmark's raw socket clients, same protocol, same server.

  raw-tus     bench._upload_clients.tus_patches: tus creation, 5 MiB PATCHes, nothing else
  cli-tus     ``hmacfs upload --protocol tus``: the whole command (start-up, state file,
              per-PATCH SHA-256 checksums, adaptive PATCH size)
  raw-drive4  bench._upload_clients.drive_upload over 4 connections (the file's SHA-256 is
              known beforehand, not timed)
  cli-drive4  ``hmacfs upload --protocol drive --parallel 4``: includes hashing the file for
              the create call and a Content-Digest per chunk

Real gunicorn+gevent server, PostgreSQL, 2 workers, loopback; the file is 1 GiB
(``-- --size-mib N`` to change) in the page cache. Target: cli ≥ 0.9x raw.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench._upload_clients import CHUNK, MiB, Source, drive_upload, tus_patches
from tests.conftest import bearer
from tests.live import HMACFS, LiveServer
from tests.pg import find_server


def _write(source: Source, path: Path) -> None:
    with path.open("wb") as handle:
        for index in range(-(-source.size // CHUNK)):
            handle.write(source.chunk(index))


def _cli(url: str, path: Path, protocol: str, state: Path) -> float:
    token = bearer(uuid.uuid4())["Authorization"].removeprefix("Bearer ")
    args = [HMACFS, "upload", str(path), "--server", url, "--token", token, "--protocol", protocol,
            "--parallel", "4", "--state-dir", str(state), "--json"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"hmacfs upload failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench client")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args(argv)
    pg = find_server()
    if pg is None:
        print("PostgreSQL not found: this benchmark needs it")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-client-") as temp:
        root = Path(temp)
        server = LiveServer(root / "server", pg.create_database("hmacfs_bench_client"), workers=2)
        try:
            server.start()
            return _run(server.url, root, options.size_mib * MiB, options.rounds)
        finally:
            server.stop()
            pg.drop_databases()


def _run(url: str, root: Path, size: int, rounds: int) -> int:
    source = Source.make(size)
    path = root / "upload.bin"
    _write(source, path)
    contenders: dict[str, Callable[[], float]] = {
        "raw-tus": lambda: tus_patches(url, bearer(uuid.uuid4()), source),
        "cli-tus": lambda: _cli(url, path, "tus", root / "state"),
        "raw-drive4": lambda: drive_upload(url, bearer(uuid.uuid4()), source, 4).total,
        "cli-drive4": lambda: _cli(url, path, "drive", root / "state"),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    print(f"upload of {size / MiB:.0f} MiB, {rounds} rounds, alternating")
    for number in range(rounds):
        for name, run in contenders.items():
            times[name].append(run())
            rate = size / MiB / times[name][-1]
            print(f"  round {number + 1} {name:10s} {times[name][-1]:6.2f} s {rate:6.0f} MiB/s")
    print("| protocol | raw median s | hmacfs upload median s | ratio (raw/cli, paired median) |")
    print("|---|---:|---:|---:|")
    for protocol in ("tus", "drive4"):
        raw, cli = times[f"raw-{protocol}"], times[f"cli-{protocol}"]
        paired = statistics.median(r / c for r, c in zip(raw, cli, strict=True))
        print(f"| {protocol} | {statistics.median(raw):.2f} | {statistics.median(cli):.2f} | {paired:.2f}x |")
    sys.stdout.flush()
    return 0
