"""hmacfs on S3 (a real SeaweedFS, ``weed mini``) against boto3 straight to the store.

Contenders, one file size and one part size for all, alternated in a new
shuffled order every round, medians over the rounds:
  peer_put    a direct boto3 multipart upload (create, parts over 4 threads, complete)
  peer_get    a direct boto3 GET of the whole object
  s3_drive4   hmacfs on S3: Drive API, parts over 4 connections, then complete
  s3_tus      hmacfs on S3: tus creation, then one PATCH per part
  s3_get      hmacfs on S3: GET /download/<id> (download = "proxy": streamed through hmacfs)
  local_*     the same three against hmacfs on its local store
  *_put4k, *_get4k   small files: 200 XEP-0363 PUTs of 4 KiB (new content each), 200
              GETs of one 4 KiB file, one after another on one connection; the peer
              makes 200 PutObjects and GetObjects (reported in ms per request)

Targets (issue 16): s3_drive4 >= 0.8x peer_put, s3_tus >= 0.6x peer_put,
s3_get >= 0.8x peer_get (throughput, paired per round). Local against S3 is reported.

``python -m bench s3 -- [--rounds N] [--size-mib N] [--part-mib N] [--quick] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import _s3_clients as clients
from bench._s3_clients import MiB, Payload
from tests.conftest import HMAC_SECRET, bearer
from tests.e2e.test_xep0363 import slot_url
from tests.live import REPO, LiveServer
from tests.pg import find_server
from tests.seaweed import SeaweedS3

RESULTS = REPO / "bench" / "results"
PREFIX = "bench/"
STREAMS = 4
# (contender, peer, target): throughput of contender / peer, paired per round.
TARGETS = (("s3_drive4", "peer_put", 0.8), ("s3_tus", "peer_put", 0.6), ("s3_get", "peer_get", 0.8))

Run = Callable[[], object]


def _options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench s3")
    parser.add_argument("--quick", action="store_true", help="64 MiB, 2 rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="default 5")
    parser.add_argument("--size-mib", type=int, default=None, help="file size; default 512")
    parser.add_argument("--part-mib", type=int, default=8, help="part and chunk size; default 8")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help="run only these contenders")
    options = parser.parse_args(argv)
    options.rounds = options.rounds or (2 if options.quick else 5)
    options.size = (options.size_mib or (64 if options.quick else 512)) * MiB
    options.part = options.part_mib * MiB
    return options


def _servers(root: Path, store: SeaweedS3, database: Callable[[], str], part: int) -> dict[str, LiveServer]:
    """hmacfs on its local store and on S3, 2 gevent workers each, fsync on (the defaults)."""
    s3 = {**store.settings(PREFIX), "part_size": f"{part // MiB}MiB", "download": "proxy"}
    return {
        "local": LiveServer(root / "local", database(), workers=2),
        "s3": LiveServer(
            root / "s3", database(), workers=2, sections={"storage": {"backend": "s3"}, "storage.s3": s3}
        ),
    }


def _contenders(
    servers: dict[str, LiveServer], store: SeaweedS3, options: argparse.Namespace
) -> dict[str, Any]:
    """Each contender: a function preparing one timed run (new content: untimed) and
    returning it."""
    size, part, seed = options.size, options.part, clients.seed(options.part)
    peer = store.client()
    prepared: dict[str, Any] = {}

    def peer_put() -> Run:
        payload, key = Payload.make(size, part, seed), f"{PREFIX}peer/{uuid.uuid4().hex}"
        return lambda: clients.peer_put(peer, store.bucket, key, payload, STREAMS)

    get_key = f"{PREFIX}peer/get"
    clients.peer_put(peer, store.bucket, get_key, Payload.make(size, part, seed), STREAMS)
    prepared["peer_put"] = peer_put
    prepared["peer_get"] = lambda: lambda: clients.peer_get(peer, store.bucket, get_key, size)

    def peer_put4k() -> Run:
        keys = [f"{PREFIX}peer/small/{uuid.uuid4().hex}" for _ in range(clients.SMALL_COUNT)]
        bodies = [os.urandom(clients.SMALL) for _ in keys]
        return lambda: clients.peer_small_puts(peer, store.bucket, keys, bodies)

    small_key = f"{PREFIX}peer/small-get"
    peer.put_object(Bucket=store.bucket, Key=small_key, Body=os.urandom(clients.SMALL))
    prepared["peer_put4k"] = peer_put4k
    prepared["peer_get4k"] = lambda: (
        lambda: clients.peer_small_gets(peer, store.bucket, small_key, clients.SMALL_COUNT)
    )
    for name, server in servers.items():
        prepared.update(_hmacfs_contenders(name, server, size, part, seed))
    return prepared


def _hmacfs_contenders(
    name: str, server: LiveServer, size: int, part: int, seed: bytes
) -> dict[str, Callable[[], Run]]:
    url = server.url

    def drive4() -> Run:
        payload, auth = Payload.make(size, part, seed), bearer(uuid.uuid4())
        return lambda: clients.drive(url, auth, payload, STREAMS)

    def tus() -> Run:
        payload, auth = Payload.make(size, part, seed), bearer(uuid.uuid4())
        return lambda: clients.tus(url, auth, payload)

    def put4k() -> Run:
        urls = [
            slot_url(server, f"s{uuid.uuid4().hex[:12]}/small.bin", clients.SMALL, secret=HMAC_SECRET)
            for _ in range(clients.SMALL_COUNT)
        ]
        bodies = [os.urandom(clients.SMALL) for _ in urls]
        return lambda: clients.small_puts(url, urls, bodies)

    owner = bearer(uuid.uuid4())
    file_id = clients.drive(url, owner, Payload.make(size, part, seed), STREAMS).file_id
    small_id = clients.drive(url, owner, Payload.make(clients.SMALL, part, seed), 1).file_id
    small_path = f"/download/{small_id}"
    return {
        f"{name}_drive4": drive4,
        f"{name}_tus": tus,
        f"{name}_get": lambda: lambda: clients.get(url, f"/download/{file_id}", owner, size),
        f"{name}_put4k": put4k,
        f"{name}_get4k": lambda: lambda: clients.small_gets(url, small_path, owner, clients.SMALL_COUNT),
    }


@dataclass
class Results:
    times: dict[str, list[float]]  # seconds per contender, one per round
    finishing: dict[str, list[float]] = field(default_factory=dict)  # seconds of the last request
    loads: list[float] = field(default_factory=list)  # 1-minute load average after each round


def _rounds(contenders: dict[str, Callable[[], Run]], rounds: int, size: int) -> Results:
    results = Results({name: [] for name in contenders})
    shuffler = random.Random(20261207)  # the same orders every run
    for number in range(rounds):
        order = list(contenders)
        shuffler.shuffle(order)  # no contender keeps a place or a neighbour
        for name in order:
            run = contenders[name]()
            os.sync()  # start from clean writeback: dirty pages of the last run throttle this one
            seconds, returned = clients.timed(run)
            results.times[name].append(seconds)
            finishing = returned.complete if isinstance(returned, clients.Uploaded) else returned
            if isinstance(finishing, float):
                results.finishing.setdefault(name, []).append(finishing)
            if _small(name):
                print(
                    f"  round {number + 1} {name:12s} {_per_request(seconds):7.2f} ms per request", flush=True
                )
            else:
                rate = size / MiB / seconds
                print(f"  round {number + 1} {name:12s} {seconds:7.2f} s  {rate:7.0f} MiB/s", flush=True)
        results.loads.append(os.getloadavg()[0])
        print(f"  round {number + 1}: load average {results.loads[-1]:.1f}", flush=True)
    return results


def _small(name: str) -> bool:
    return name.endswith("4k")


def _per_request(seconds: float) -> float:
    """Milliseconds per request of a small-file run."""
    return seconds / clients.SMALL_COUNT * 1000


def _paired(times: dict[str, list[float]], contender: str, peer: str) -> float:
    """Median over rounds of (peer seconds / contender seconds): throughput against peer."""
    return statistics.median(p / c for p, c in zip(times[peer], times[contender], strict=True))


def report(results: Results, options: argparse.Namespace) -> list[str]:
    times, size = results.times, options.size
    loads = ", ".join(f"{load:.1f}" for load in results.loads)
    lines = [
        f"{size // MiB} MiB file, {options.part // MiB} MiB parts, {options.rounds} rounds, "
        f"load average after each round: {loads}",
        "",
        "| contender | median s | MiB/s | last request, median s | runs (s) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, values in times.items():
        if _small(name):
            continue
        median = statistics.median(values)
        last = f"{statistics.median(results.finishing[name]):.2f}" if name in results.finishing else ""
        runs = " ".join(f"{value:.2f}" for value in values)
        lines.append(f"| {name} | {median:.2f} | {size / MiB / median:.0f} | {last} | {runs} |")
    lines += ["", "| target | paired median | ratio of medians | target | met |", "|---|---:|---:|---:|---|"]
    for contender, peer, target in TARGETS:
        if contender not in times or peer not in times:
            continue
        paired = _paired(times, contender, peer)
        of_medians = statistics.median(times[peer]) / statistics.median(times[contender])
        met = "yes" if paired >= target else "**no**"
        lines.append(f"| {contender} vs {peer} | {paired:.2f}x | {of_medians:.2f}x | ≥ {target}x | {met} |")
    lines += ["", "| protocol | S3 vs local (paired median) |", "|---|---:|"]
    for protocol in ("drive4", "tus", "get", "put4k", "get4k"):
        if f"s3_{protocol}" not in times or f"local_{protocol}" not in times:
            continue
        lines.append(f"| {protocol} | {_paired(times, f's3_{protocol}', f'local_{protocol}'):.2f}x |")
    small = [name for name in times if _small(name)]
    if small:
        runs = f"{clients.SMALL} B, {clients.SMALL_COUNT} requests one after another per run"
        lines += ["", f"Small files ({runs}):", ""]
        lines += ["| contender | median ms per request | vs the peer (paired) |", "|---|---:|---:|"]
        for name in small:
            peer = "peer_" + name.partition("_")[2]
            against = f"{_paired(times, name, peer):.2f}x" if peer in times and name != peer else ""
            lines.append(f"| {name} | {_per_request(statistics.median(times[name])):.2f} | {against} |")
    return lines


def main(argv: list[str]) -> int:
    options = _options(argv)
    pg = find_server()
    if pg is None:
        print("PostgreSQL not found: this benchmark needs it")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as temp:
        root = Path(temp)
        store = SeaweedS3(root / "seaweed").start()
        os.environ.update(store.env)  # the S3 node's credentials (LiveServer passes the environment on)
        servers = _servers(root, store, lambda: pg.create_database("hmacfs_bench"), options.part)
        try:
            for server in servers.values():
                server.start()
            contenders = _contenders(servers, store, options)
            if options.only:  # the others are set up (their files) but not run
                contenders = {name: contenders[name] for name in options.only}
            print(f"s3: {options.size // MiB} MiB, {options.part // MiB} MiB parts, {options.rounds} rounds")
            results = _rounds(contenders, options.rounds, options.size)
        except Exception:
            for name, server in servers.items():
                print(f"-- server {name}, end of its log:\n{server.log()[-12000:]}")
            raise
        finally:
            for server in servers.values():
                server.stop()
            store.stop()
            pg.drop_databases()
    lines = report(results, options)
    print("\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = {**asdict(results), "size": options.size, "part": options.part}
    (RESULTS / "s3.json").write_text(json.dumps(raw, indent=1))
    return 0
