"""Background task benchmarks on PostgreSQL with real ``hmacfs worker`` processes.

1. Statements, round trips and CPU per no-op task of one in-process slot.
2. No-op throughput with 4 slots: defaults, one task per claim, no WAL-flush wait,
   and with ``--baseline PATH`` another checkout's workers (alternating rounds).
3. Chaos: N no-op tasks while worker processes are ``kill -9``-ed at random;
   counts effect rows to show every task ran and none twice.
4. FileCompress (zip, level 6) and FileEncrypt/FileDecrypt throughput on a
   large file, with the worker slot's peak RSS (VmHWM).

``python -m bench tasks -- [--quick] [--only PART] [--baseline PATH]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from hmacfs.composition import build_services
from hmacfs.config import load_settings
from hmacfs.container import Services
from hmacfs.db import DEFAULT_POOL_ID, make_engine
from hmacfs.files import NewFile, create_file_from_part
from hmacfs.migrate import upgrade
from hmacfs.models import Task
from hmacfs.tasks import submit_task
from tests.live import REPO
from tests.pg import find_server
from tests.worker_process import WorkerProcess, worker_config, worker_env

MIB = 1024 * 1024


@dataclass
class Env:
    workdir: Path
    url: str

    def services(self, **tasks: Any) -> tuple[Path, Services]:
        config = worker_config(
            self.workdir,
            self.url,
            tasks={
                "lease_duration": "2s",
                "poll_interval": "50ms",
                "max_attempts": 50,
                "handler_modules": ["bench._task_handlers"],
                **tasks,
            },
            logging={"level": "WARNING"},
        )
        settings = load_settings(config)
        services = build_services(settings)
        services.store.ensure_layout()
        return config, services


@contextmanager
def workers(config: Path, processes: int, slots: int, source: Path = REPO) -> Iterator[list[WorkerProcess]]:
    started = [WorkerProcess(config, slots, source=source).start() for _ in range(processes)]
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def _reset(services: Services) -> None:
    with services.db.sessions() as s:
        s.execute(text("DELETE FROM tasks"))
        s.execute(text("DELETE FROM events"))
        s.execute(text("DELETE FROM bench_effects"))
        s.commit()


def _submit_noops(services: Services, count: int) -> None:
    account = uuid.uuid4()
    with services.db.sessions() as s:
        for _ in range(count):
            submit_task(s, services, account, "Custom", {"handler": "bench-noop"})
        s.commit()


def _remaining(services: Services) -> int:
    with services.db.sessions() as s:
        return s.scalar(select(func.count()).where(Task.status != "Completed")) or 0


def _wait_all(services: Services, timeout: float) -> float:
    start = time.perf_counter()
    while _remaining(services):
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"{_remaining(services)} tasks left after {timeout}s")
        time.sleep(0.02)
    return time.perf_counter() - start


@dataclass(frozen=True)
class Contender:
    name: str
    tasks: dict[str, Any]  # [tasks] settings
    source: Path = REPO  # the checkout whose worker code runs


CONTENDERS = [
    Contender("defaults", {}),
    Contender("claim_batch 1", {"claim_batch": 1}),
    Contender("defaults, durable_commits=false", {"durable_commits": False}),
]


def throughput(env: Env, contenders: list[Contender], count: int, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {contender.name: [] for contender in contenders}
    for _ in range(rounds):
        for contender in contenders:
            config, services = env.services(**contender.tasks)
            _reset(services)
            with workers(config, 1, 4, contender.source):
                time.sleep(2)  # slots up and idle
                _submit_noops(services, count)
                elapsed = _wait_all(services, 300)
            results[contender.name].append(count / elapsed)
            services.db.engine.dispose()
    return results


def statements(env: Env, contenders: list[Contender], count: int) -> dict[str, dict[str, Any]]:
    """Per no-op task of one in-process slot: statements by kind, round trips, CPU (see _task_statements)."""
    script = Path(__file__).with_name("_task_statements.py")
    found = {}
    for contender in contenders:
        config, services = env.services(**contender.tasks)
        _reset(services)
        services.db.engine.dispose()
        done = subprocess.run(
            [sys.executable, str(script), str(config), str(count)],
            env=worker_env(config, contender.source),
            capture_output=True,
            text=True,
            check=True,
        )
        found[contender.name] = json.loads(done.stdout.splitlines()[-1])
    return found


def chaos(env: Env, count: int, seconds: float) -> dict[str, Any]:
    config, services = env.services()
    _reset(services)
    _submit_noops(services, count)
    kills = 0
    rng = random.Random(6)
    procs = [WorkerProcess(config, 2).start() for _ in range(2)]
    start = time.perf_counter()
    try:
        while _remaining(services) and time.perf_counter() - start < seconds:
            time.sleep(rng.uniform(0.2, 0.8))
            victim = rng.randrange(len(procs))
            procs[victim].kill()
            kills += 1
            procs[victim] = WorkerProcess(config, 2).start()
        _wait_all(services, 120)
    finally:
        for process in procs:
            process.stop()
    with services.db.sessions() as s:
        rows = s.execute(text("SELECT count(*), count(DISTINCT task_id) FROM bench_effects")).one()
        retried = s.scalar(select(func.count()).where(Task.attempts > 1)) or 0
        completed = s.scalar(select(func.count()).where(Task.status == "Completed")) or 0
    services.db.engine.dispose()
    return {
        "tasks": count,
        "completed": completed,
        "effects": rows[0],
        "distinct": rows[1],
        "kills": kills,
        "retried": retried,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def _wait_sampling(services: Services, task_id: str, pid: int) -> tuple[Task, int]:
    """Wait for the task while sampling the slot's RSS every 50 ms; returns the largest sample."""
    largest, deadline = 0, time.monotonic() + 900
    while time.monotonic() < deadline:
        largest = max(largest, _vm(pid, "VmRSS"))
        with services.db.sessions() as s:
            task = s.scalars(select(Task).where(Task.task_id == task_id)).one()
            if task.status not in ("Pending", "InProgress"):
                return task, largest
        time.sleep(0.05)
    raise RuntimeError(f"{task_id} did not finish")


def _big_file(services: Services, size: int) -> Any:
    block = os.urandom(MIB // 2) + bytes(MIB // 2)  # half random, half zeros: deflate has work to do
    part = f"bench-{uuid.uuid4().hex}"
    services.store.create_part(part, size)
    path = services.store.part_path(part)
    with path.open("r+b") as handle:
        for _ in range(size // MIB):
            handle.write(block)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(MIB):
            digest.update(data)
    account = uuid.uuid4()
    with services.db.sessions() as s:
        file = create_file_from_part(
            s,
            services.store,
            services.settings.deduplication,
            part=part,
            sha256=digest.hexdigest(),
            size=size,
            new=NewFile(
                name="big.bin",
                content_type="application/octet-stream",
                pool_id=DEFAULT_POOL_ID,
                account_id=account,
            ),
        )
        s.commit()
        return file.id, account


def file_tasks(env: Env, size: int, rounds: int) -> dict[str, list[tuple[float, int, int]]]:
    config, services = env.services()
    _reset(services)
    file_id, account = _big_file(services, size)
    jobs = [
        ("compress zip/6", "FileCompress", {"fileIds": [str(file_id)], "compressionLevel": 6}),
        ("encrypt", "FileEncrypt", {"fileId": str(file_id), "password": "bench"}),
        ("decrypt", "FileDecrypt", {"fileId": str(file_id), "password": "bench"}),
    ]
    results: dict[str, list[tuple[float, int, int]]] = {name: [] for name, _, _ in jobs}
    for _ in range(rounds):
        for name, type, parameters in jobs:
            with workers(config, 1, 1) as (worker,):
                time.sleep(1.5)
                with services.db.sessions() as s:
                    task = submit_task(s, services, account, type, dict(parameters))
                    s.commit()
                start = time.perf_counter()
                assert worker.process is not None
                done, sampled = _wait_sampling(services, task.task_id, worker.process.pid)
                elapsed = time.perf_counter() - start
                peak = _vm(worker.process.pid, "VmHWM")
            if done.status != "Completed":
                raise RuntimeError(f"{name}: {done.error_message}")
            results[name].append((size / MIB / elapsed, peak, sampled))
    services.db.engine.dispose()
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench tasks")
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rounds", type=int, help="throughput rounds (default 3, --quick 1)")
    parser.add_argument("--only", choices=("statements", "throughput", "chaos", "files"), help="run one part")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. a git worktree of main): its workers, with its defaults, contend first",
    )
    args = parser.parse_args(argv)
    contenders = list(CONTENDERS)
    if args.baseline is not None:
        source, name = args.baseline.resolve(), args.baseline.name
        contenders[:0] = [
            Contender(f"baseline {name}: defaults", {}, source),
            Contender(f"baseline {name}: claim_batch 8", {"claim_batch": 8}, source),
        ]
    count, rounds = (1000, 1) if args.quick else (3000, 3)
    rounds = args.rounds or rounds
    chaos_count = 1000 if args.quick else 10_000
    big = (64 if args.quick else 1024) * MIB
    server = find_server()
    if server is None:
        print("PostgreSQL not available")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-tasks-") as tmp:
        env = Env(Path(tmp), server.create_database("bench_tasks"))
        upgrade(make_engine(env.url))
        engine = make_engine(env.url)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE bench_effects (task_id text NOT NULL, worker_pid int)"))
        engine.dispose()
        try:
            _report(env, contenders, args.only, (count, rounds, chaos_count, big))
        finally:
            server.drop_databases()
    return 0


def _report(
    env: Env, contenders: list[Contender], only: str | None, sizes: tuple[int, int, int, int]
) -> None:
    count, rounds, chaos_count, big = sizes
    if only in (None, "statements"):
        _report_statements(env, contenders, count)
    if only in (None, "throughput"):
        _report_throughput(env, contenders, count, rounds)
    if only in (None, "chaos"):
        outcome = chaos(env, chaos_count, seconds=120)
        print(f"\nchaos run: {outcome}")
        ok = outcome["completed"] == outcome["tasks"] == outcome["effects"] == outcome["distinct"]
        print(f"every task ran exactly once: {ok}")
    if only in (None, "files"):
        _report_files(env, big, max(1, rounds - 1))


def _report_statements(env: Env, contenders: list[Contender], count: int) -> None:
    found = statements(env, contenders, count)
    print(f"\nper no-op task, 1 in-process slot, {count} tasks (CPU times depend on the load)")
    print("| contender | round trips | statements | client CPU ms | backend CPU ms |\n|---|---|---|---|---|")
    for name, values in found.items():
        kinds = ", ".join(f"{kind} {n:g}" for kind, n in values["per_task"].items())
        cpu = f"{values['client_cpu_ms']} | {values['server_cpu_ms']}"
        print(f"| {name} | {values['round_trips']} | {kinds} | {cpu} |")


def _report_throughput(env: Env, contenders: list[Contender], count: int, rounds: int) -> None:
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    rates = throughput(env, contenders, count, rounds)
    print(f"\nno-op tasks, 4 slots (1 `hmacfs worker --concurrency 4`), {count} tasks x {rounds} rounds")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    first = contenders[0].name
    base = statistics.median(rates[first])
    print(f"| contender | median tasks/s | runs | ratio to {first} |\n|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {median:.0f} | {runs} | {median / base:.2f} |")


def _report_files(env: Env, big: int, rounds: int) -> None:
    files = file_tasks(env, big, rounds)
    print(f"\nfile tasks on a {big // MIB} MiB file (half random, half zeros), 1 slot")
    print("| task | median MB/s | peak slot RSS (VmHWM) | largest RSS sample (50 ms) |\n|---|---|---|---|")
    for name, runs in files.items():
        speed = statistics.median(r[0] for r in runs)
        peak, sampled = max(r[1] for r in runs) / MIB, max(r[2] for r in runs) / MIB
        print(f"| {name} | {speed:.1f} | {peak:.0f} MiB | {sampled:.0f} MiB |")
