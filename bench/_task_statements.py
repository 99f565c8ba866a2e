"""SQL statements and CPU time per no-op task of one in-process worker slot.

Run by ``bench/tasks.py`` as a script, with the checkout to measure first on
PYTHONPATH, so a baseline checkout is counted the same way::

    python bench/_task_statements.py CONFIG COUNT

Submits COUNT no-op tasks of one account, drains them with one ``Worker``
(no pre-ping, as ``hmacfs worker`` slots run) and prints one JSON object:
statements per task by kind, round trips per task (statements + BEGIN +
COMMIT: psycopg2 sends each as its own message), the slot's CPU time and its
PostgreSQL backend's CPU time per task. Counts are deterministic; CPU times
depend on the machine's load.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from hmacfs.composition import build_services, task_handlers
from hmacfs.config import load_settings
from hmacfs.tasks import submit_task
from hmacfs.tasks.worker import Worker


def _kind(statement: str) -> str:
    """``UPDATE tasks``, ``INSERT INTO events``, ``SELECT pg_notify``, ``SELECT FROM tasks``, ``SET``..."""
    words = statement.split()
    verb = words[0].upper()
    if verb == "SELECT" and "(" in words[1]:
        return f"SELECT {words[1].split('(')[0]}"
    if verb == "SELECT" and "FROM" in words:
        return f"SELECT FROM {words[words.index('FROM') + 1]}"
    if verb in ("UPDATE", "DELETE"):
        return f"{verb} {words[1] if verb == 'UPDATE' else words[2]}"
    return " ".join(words[:3]) if verb == "INSERT" else verb


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(config: Path, count: int) -> dict[str, Any]:
    settings = load_settings(config)
    services = build_services(settings, pre_ping=False)
    services.store.ensure_layout()
    account = uuid.uuid4()
    with services.db.sessions() as session:
        for _ in range(count):
            submit_task(session, services, account, "Custom", {"handler": "bench-noop"})
        session.commit()
    with services.db.engine.connect() as connection:  # the pool's one connection, reused below
        backend = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
    counts: collections.Counter[str] = collections.Counter()

    def _statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counts[_kind(statement)] += 1

    event.listen(services.db.engine, "before_cursor_execute", _statement)
    event.listen(services.db.engine, "begin", lambda _conn: counts.update(["BEGIN"]))
    event.listen(services.db.engine, "commit", lambda _conn: counts.update(["COMMIT"]))
    worker = Worker(services, threading.Event(), task_handlers(services.settings))
    server_before, cpu_before, start = _backend_cpu(backend), time.process_time(), time.perf_counter()
    while worker.run_once():
        pass
    elapsed = time.perf_counter() - start
    cpu, server = time.process_time() - cpu_before, _backend_cpu(backend) - server_before
    services.db.engine.dispose()
    return {
        "per_task": {kind: round(n / count, 2) for kind, n in counts.most_common()},
        "round_trips": round(sum(counts.values()) / count, 2),
        "client_cpu_ms": round(1000 * cpu / count, 2),
        "server_cpu_ms": round(1000 * server / count, 2),
        "tasks_per_s": round(count / elapsed),
    }


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]), int(sys.argv[2]))))
