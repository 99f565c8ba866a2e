"""``hmacfs upload`` against the benchmark's raw socket clients, same protocol, same server.

  raw-tus        bench._upload_clients.tus_patches: tus creation, 5 MiB PATCHes, nothing else
  cli-tus        ``hmacfs upload --protocol tus`` as shipped: the whole command (start-up,
                 state file, per-PATCH SHA-256 checksums, PATCH sizes from the server's
                 recommendation, then from measured goodput)
  cli-tus-5m     the same with ``--chunk-size 5MiB``: every PATCH the raw client's size,
                 so only the client's own costs differ
  raw-drive4     bench._upload_clients.drive_upload over 4 connections, 5 MiB chunks (the
                 file's SHA-256 is known beforehand, not timed)
  cli-drive4     ``hmacfs upload --protocol drive --parallel 4`` as shipped: includes hashing
                 the file for the create call and a Content-Digest per chunk; the chunk
                 size is the server's recommendation
  cli-drive4-5m  the same with ``--chunk-size 5MiB``

Real gunicorn+gevent server, PostgreSQL, 2 workers, loopback; the file is 1 GiB
(``-- --size-mib N`` to change) in the page cache. Target: cli ≥ 0.9x raw.
Besides wall time, each run's CPU time is measured per component: the client
(the ``hmacfs upload`` process, or this process for a raw client) and the
server (every process of its session, from /proc), so a miss can be traced to
the side that spent it. The machine has 2 cores: client and server compete.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench._upload_clients import CHUNK, MiB, Source, drive_upload, tus_patches
from tests.conftest import bearer
from tests.live import HMACFS, LiveServer
from tests.pg import find_server


def _write(source: Source, path: Path) -> None:
    with path.open("wb") as handle:
        for index in range(-(-source.size // CHUNK)):
            handle.write(source.chunk(index))


@dataclass
class Sample:
    wall: float  # seconds
    client_cpu: float  # seconds of CPU, user + system
    server_cpu: float


def _session_cpu(session: int) -> float:
    """CPU seconds (user + system) of the live processes of one session (the server's)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[3]) == session:  # fields[0] is the state: sid is stat field 6
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(run: Callable[[], float], server: int) -> Sample:
    """Run one contender; its wall time, and CPU spent by this process, its finished
    children (the ``hmacfs upload`` process) and the server's session."""
    own, children, served = time.process_time(), _children_cpu(), _session_cpu(server)
    wall = run()
    client = time.process_time() - own + _children_cpu() - children
    return Sample(wall, client, _session_cpu(server) - served)


def _cli(url: str, path: Path, protocol: str, state: Path, *extra: str) -> float:
    token = bearer(uuid.uuid4())["Authorization"].removeprefix("Bearer ")
    args = [HMACFS, "upload", str(path), "--server", url, "--token", token, "--protocol", protocol,
            "--parallel", "4", "--state-dir", str(state), "--json", *extra]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"hmacfs upload failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench client")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
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
            assert server.process is not None
            return _run(server.url, server.process.pid, root, options.size_mib * MiB, options.rounds)
        finally:
            server.stop()
            pg.drop_databases()


def _run(url: str, server: int, root: Path, size: int, rounds: int) -> int:
    source = Source.make(size)
    path = root / "upload.bin"
    _write(source, path)
    contenders: dict[str, Callable[[], float]] = {
        "raw-tus": lambda: tus_patches(url, bearer(uuid.uuid4()), source),
        "cli-tus": lambda: _cli(url, path, "tus", root / "state"),
        "cli-tus-5m": lambda: _cli(url, path, "tus", root / "state", "--chunk-size", str(CHUNK)),
        "raw-drive4": lambda: drive_upload(url, bearer(uuid.uuid4()), source, 4).total,
        "cli-drive4": lambda: _cli(url, path, "drive", root / "state"),
        "cli-drive4-5m": lambda: _cli(url, path, "drive", root / "state", "--chunk-size", str(CHUNK)),
    }
    samples: dict[str, list[Sample]] = {name: [] for name in contenders}
    print(f"upload of {size / MiB:.0f} MiB, {rounds} rounds, alternating")
    for number in range(rounds):
        for name, run in contenders.items():
            got = _measure(run, server)
            samples[name].append(got)
            print(f"  round {number + 1} {name:13s} {got.wall:6.2f} s {size / MiB / got.wall:6.0f} MiB/s"
                  f"  cpu client {got.client_cpu:5.2f} s server {got.server_cpu:5.2f} s")  # fmt: skip
    _table(samples)
    return 0


def _table(samples: dict[str, list[Sample]]) -> None:
    print("| hmacfs upload | raw median s | hmacfs upload median s | ratio (raw/cli, paired median) "
          "| CPU s raw: client + server | CPU s cli: client + server |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for protocol, cli_name in (
        ("tus", "tus"),
        ("tus", "tus-5m"),
        ("drive4", "drive4"),
        ("drive4", "drive4-5m"),
    ):
        raw, cli = samples[f"raw-{protocol}"], samples[f"cli-{cli_name}"]
        paired = statistics.median(r.wall / c.wall for r, c in zip(raw, cli, strict=True))

        def cpu(runs: list[Sample]) -> str:
            client = statistics.median(r.client_cpu for r in runs)
            return f"{client:.2f} + {statistics.median(r.server_cpu for r in runs):.2f}"

        wall_raw, wall_cli = statistics.median(r.wall for r in raw), statistics.median(c.wall for c in cli)
        print(f"| {cli_name} | {wall_raw:.2f} | {wall_cli:.2f} | {paired:.2f}x | {cpu(raw)} | {cpu(cli)} |")
    sys.stdout.flush()
