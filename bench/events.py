"""Live-event delivery on the real server (``hmacfs serve``, 2 gevent workers, PostgreSQL).

Measures, loopback only and bounded:
  latency   publish-commit in this process (a stand-in for a chunk's acknowledgement:
            the upload path publishes the same way) to arrival at a WebSocket client,
            with 0 and then N idle subscribers connected to the workers;
  memory    RSS of the workers before and after holding M idle sockets;
  rate      events published per second by 4 publisher threads, all received, in order.

Run: ``make bench SUITES=events`` (add ``-- --quick`` for a short run).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import websocket
from sqlalchemy.orm import Session

from hmacfs.db import make_engine
from hmacfs.events import publish
from hmacfs.events.publisher import written_events
from tests.conftest import bearer
from tests.live import LiveServer
from tests.pg import find_server


def _raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _socket(server: LiveServer, account: uuid.UUID) -> websocket.WebSocket:
    url = server.url.replace("http://", "ws://") + "/ws"
    sock = websocket.create_connection(
        url, header=[f"Authorization: {bearer(account)['Authorization']}"], timeout=30
    )
    sock.send('{"type":"ping"}')
    assert json.loads(sock.recv())["type"] == "pong"
    return sock


def _workers_rss_kb(server: LiveServer) -> int:
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    total = 0
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def _latencies(server: LiveServer, engine: Any, samples: int) -> list[float]:
    account = uuid.uuid4()
    listeners = [_socket(server, account) for _ in range(4)]  # spread over both workers
    found: list[float] = []
    for _ in range(samples):
        with Session(engine) as session:
            publish(session, account, "upload.progress", {"progress": 1})
            start = time.perf_counter()  # the row is written, locked and announced inside commit
            session.commit()
            event_id = written_events(session)[0].id
        for sock in listeners:
            assert json.loads(sock.recv())["id"] == event_id
            found.append((time.perf_counter() - start) * 1000)
    for sock in listeners:
        sock.close()
    return found


def _rate(server: LiveServer, engine: Any, count: int) -> tuple[float, bool]:
    account = uuid.uuid4()
    listener = _socket(server, account)
    per_thread = count // 4
    published: list[int] = []

    def run() -> None:
        for n in range(per_thread):
            with Session(engine) as session:
                publish(session, account, "upload.progress", {"n": n})
                session.commit()
                published.extend(event.id for event in written_events(session))

    start = time.perf_counter()
    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    received = [json.loads(listener.recv()).get("id") for _ in range(per_thread * 4)]
    elapsed = time.perf_counter() - start
    for thread in threads:
        thread.join()
    listener.close()
    return len(received) / elapsed, received == sorted(published)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench events")
    parser.add_argument("--quick", action="store_true", help="fewer sockets and samples")
    args = parser.parse_args(argv)
    idle, held, samples, rounds, count = (
        (200, 1000, 100, 2, 1000) if args.quick else (1000, 5000, 300, 3, 4000)
    )
    pg = find_server()
    if pg is None:
        print("events bench needs PostgreSQL")
        return 1
    fd_limit = _raise_fd_limit()
    if fd_limit < 2 * held + 200:
        print(f"ulimit -n is {fd_limit}; need about {2 * held + 200}")
        return 1
    workdir = Path(mkdtemp(prefix="hmacfs-bench-events-"))
    sections = {
        "server": {"worker_connections": held + idle + 100},
        "events": {"subscriber_queue_size": count * 2},
        "database": {"pool_size": 5},
    }
    server = LiveServer(workdir, pg.create_database("hmacfs_bench"), workers=2, sections=sections).start()
    engine = make_engine(server.database_url)
    try:
        return _run(server, engine, idle=idle, held=held, samples=samples, rounds=rounds, count=count)
    finally:
        engine.dispose()
        server.stop()
        pg.stop()


def _run(
    server: LiveServer, engine: Any, *, idle: int, held: int, samples: int, rounds: int, count: int
) -> int:
    _latencies(server, engine, 20)  # warm-up: code paths, pools
    baseline: list[float] = []
    for _ in range(rounds):
        baseline += _latencies(server, engine, samples)
    rss_before = _workers_rss_kb(server)
    sockets = [_socket(server, uuid.uuid4()) for _ in range(idle)]
    loaded: list[float] = []
    for _ in range(rounds):
        loaded += _latencies(server, engine, samples)
    sockets += [_socket(server, uuid.uuid4()) for _ in range(held - idle)]
    time.sleep(1)
    rss_after = _workers_rss_kb(server)
    rates = [_rate(server, engine, count) for _ in range(rounds)]
    for sock in sockets:
        sock.close()
    _report(
        baseline, loaded=loaded, idle=idle, held=held, rss_before=rss_before, rss_after=rss_after, rates=rates
    )
    return 0 if all(complete for _, complete in rates) else 1


def _report(
    baseline: list[float],
    *,
    loaded: list[float],
    idle: int,
    held: int,
    rss_before: int,
    rss_after: int,
    rates: list[tuple[float, bool]],
) -> None:
    print("| measurement | value |")
    print("|---|---|")
    for name, values in (("latency, 0 idle sockets", baseline), (f"latency, {idle} idle sockets", loaded)):
        p50, p99 = _percentile(values, 0.5), _percentile(values, 0.99)
        print(f"| {name}: p50 / p99 ({len(values)} deliveries) | {p50:.2f} ms / {p99:.2f} ms |")
    ratio = statistics.median(loaded) / statistics.median(baseline)
    print(f"| p50 ratio {idle} idle / 0 idle | {ratio:.2f} |")
    per_socket = (rss_after - rss_before) / held
    before, after = rss_before / 1024, rss_after / 1024
    print(f"| worker RSS before / after {held} idle sockets | {before:.1f} MB / {after:.1f} MB |")
    print(f"| memory per idle socket | {per_socket:.1f} KB |")
    values = [rate for rate, _ in rates]
    lossless = all(complete for _, complete in rates)
    rate = statistics.median(values)
    print(f"| events/s, 4 publishers (median of {len(values)}) | {rate:.0f} (all in order: {lossless}) |")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
