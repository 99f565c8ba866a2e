"""``hmacfs worker --min 1 --max 4`` follows the queue: a burst of 200 tasks grows it to 4
processes, and it shrinks back to 1 once the queue is empty, losing no task (PostgreSQL); its
/metrics counts every task its slots ran."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from hmacfs.composition import build_services
from hmacfs.config import load_settings
from hmacfs.db import make_engine
from hmacfs.migrate import upgrade
from hmacfs.models import Task
from hmacfs.tasks import submit_task
from tests.pg import PgServer, free_port
from tests.worker_process import WorkerProcess, scrape, worker_config

pytestmark = pytest.mark.e2e

BURST = 200


def _slots(process: WorkerProcess) -> int:
    assert process.process is not None
    pid = process.process.pid
    return len(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s")


def test_a_burst_grows_the_worker_to_its_maximum_and_an_empty_queue_shrinks_it(
    pg_server: PgServer | None, tmp_path: Path
) -> None:
    if pg_server is None:
        pytest.skip("PostgreSQL not available")
    url, port = pg_server.create_database(), free_port()
    config = worker_config(
        tmp_path,
        url,
        storage={"fsync": False},
        tasks={"poll_interval": "100ms", "handler_modules": ["tests.tasks.slow_handlers"]},
        workers={
            "worker_scale_up_thresh": 20,
            "worker_scale_down_thresh": 5,
            "worker_scale_interval": "300ms",
            "metrics_bind": f"127.0.0.1:{port}",
        },
    )
    upgrade(make_engine(url))
    services = build_services(load_settings(config))
    services.store.ensure_layout()
    worker = WorkerProcess(config, arguments=("--min", "1", "--max", "4")).start()
    try:
        _wait(lambda: _slots(worker) == 1, 30, "one slot at start")
        account = uuid.uuid4()
        with services.db.sessions() as session:
            for _ in range(BURST):
                submit_task(
                    session, services, account, "Custom", {"handler": "test-slow", "steps": 2, "delay": 0.05}
                )
            session.commit()
        peak = 0

        def grown() -> bool:
            nonlocal peak
            peak = max(peak, _slots(worker))
            return peak == 4

        _wait(grown, 30, "4 slots for the burst")

        def drained() -> bool:
            with services.db.sessions() as session:
                return session.query(Task).filter(Task.status != "Completed").count() == 0

        _wait(drained, 120, f"all {BURST} tasks completed")
        _wait(lambda: _slots(worker) == 1, 30, "back to one slot with the queue empty")
        with services.db.sessions() as session:
            tasks = session.query(Task).all()
        assert len(tasks) == BURST and {t.attempts for t in tasks} == {1}  # nothing lost or retried
        metrics = scrape(port)
        assert metrics["hmacfs_worker_slots"] == 1
        assert metrics["hmacfs_task_queue_depth"] == 0
        assert metrics["hmacfs_worker_scaled_slots_total{direction=up}"] == 3
        assert metrics["hmacfs_worker_scaled_slots_total{direction=down}"] == 3
        # The slots' task metrics, retired slots' included, add up to what was done.
        assert metrics["hmacfs_tasks_total{status=Completed,type=Custom}"] == BURST
        assert metrics["hmacfs_task_duration_seconds_count{type=Custom}"] == BURST
        assert metrics["hmacfs_db_pool_capacity"] == 30  # the one live slot's pool (20 + 10)
    finally:
        assert worker.stop() == 0
        services.db.engine.dispose()
    log = (tmp_path / "worker.log").read_text()
    assert "scaling up from 1 to 4 slot(s)" in log and "scaling down from 2 to 1 slot(s)" in log
