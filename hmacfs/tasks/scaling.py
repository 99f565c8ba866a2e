"""``hmacfs worker --min N --max M``: task processes that follow the depth of the queue.

Every ``[workers] worker_scale_interval`` the supervisor counts the claimable
Pending tasks (all nodes share the queue) and sizes its slots with
:func:`target_slots`: at or above ``worker_scale_up_thresh`` it adds one slot
per that many queued tasks at once (a burst is met at once, up to the
maximum); at or below ``worker_scale_down_thresh`` it retires one slot per
interval (a gradual descent, so a queue that refills soon finds slots still
there); in between it holds.

Retiring never loses work: the supervisor picks a slot that holds no lease when
there is one, and sends it SIGUSR1. A draining slot claims nothing more,
finishes the task it runs, hands back (through ``release_task``, no attempt
counted) any task it claimed but had not started, and exits. SIGTERM to the
supervisor still stops every slot at its next checkpoint, as without scaling.

Each change is logged and counted (``hmacfs.metrics.WorkerMetrics``, served with
the slots' task metrics on ``[workers] metrics_bind``: ``hmacfs.tasks.exporter``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hmacfs.config import Settings
from hmacfs.db import make_engine
from hmacfs.metrics import WorkerMetrics, worker_metrics
from hmacfs.models import utcnow
from hmacfs.tasks import queue
from hmacfs.tasks.exporter import forget_process
from hmacfs.tasks.registry import TaskHandlers
from hmacfs.tasks.signals import STOP_SIGNALS, held_for_fork, relay_signals
from hmacfs.tasks.worker import BuildServices, run_slot, serve_worker_metrics, worker_id_prefix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScalePolicy:
    minimum: int
    maximum: int
    up_threshold: int
    down_threshold: int
    interval: float  # seconds between measurements


def target_slots(current: int, depth: int, policy: ScalePolicy) -> int:
    """How many slots to run with ``current`` running and ``depth`` claimable tasks queued."""
    if current < policy.minimum or current > policy.maximum:
        return min(max(current, policy.minimum), policy.maximum)
    if depth >= policy.up_threshold:
        return min(policy.maximum, current + max(1, depth // policy.up_threshold))
    if depth <= policy.down_threshold:
        return max(policy.minimum, current - 1)
    return current


def policy_from(settings: Settings, minimum: int | None, maximum: int | None) -> ScalePolicy:
    """The policy of ``--min``/``--max`` (default ``min_workers``/``numworkers``); ValueError if min > max."""
    workers = settings.workers
    low = minimum if minimum is not None else workers.min_workers
    high = maximum if maximum is not None else max(workers.numworkers, low)
    if low > high:
        raise ValueError(f"--min {low} is above --max {high}")
    return ScalePolicy(
        low,
        high,
        workers.worker_scale_up_thresh,
        workers.worker_scale_down_thresh,
        workers.worker_scale_interval.total_seconds(),
    )


def _slot_main(
    engine: Engine, fds: Sequence[int], settings: Settings, handlers: TaskHandlers, build: BuildServices
) -> None:
    """A forked slot: forget the supervisor's connections and metrics socket, then run."""
    engine.dispose(close=False)
    for fd in fds:
        os.close(fd)
    run_slot(settings, handlers, build, drain=threading.Event())


class Supervisor:
    """Runs and resizes the slots of one ``hmacfs worker`` (PostgreSQL only)."""

    def __init__(
        self,
        settings: Settings,
        handlers: TaskHandlers,
        build: BuildServices,
        policy: ScalePolicy,
        metrics_dir: str | None = None,
    ) -> None:
        self.settings, self.handlers, self.build, self.policy = settings, handlers, build, policy
        self.metrics_dir = metrics_dir
        # One connection, opened per measurement; forked slots drop it (see _slot_main).
        self.engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
        self.context = multiprocessing.get_context("fork")
        self.stop = threading.Event()
        self.slots: list[BaseProcess] = []
        self.retiring: list[BaseProcess] = []
        # Exported through the multiprocess files (metrics_dir), not this registry.
        self.metrics: WorkerMetrics = worker_metrics(CollectorRegistry())
        self._fds: tuple[int, ...] = ()

    def serve_metrics(self) -> None:
        """Serve /metrics on ``[workers] metrics_bind`` (if set) from a thread of this process."""
        self._fds = serve_worker_metrics(self.settings, self.metrics_dir)

    def run(self) -> None:
        """Start ``policy.minimum`` slots and follow the queue until SIGTERM/SIGINT."""
        relay_signals(dict.fromkeys(STOP_SIGNALS, self.stop))
        log.info("worker scaling between %d and %d slot(s)", self.policy.minimum, self.policy.maximum)
        self.slots = [self._start() for _ in range(self.policy.minimum)]
        self.metrics.slots.set(len(self.slots))
        next_measure = time.monotonic() + self.policy.interval
        while not self.stop.wait(0.2):
            self._replace_dead()
            if time.monotonic() >= next_measure:
                next_measure = time.monotonic() + self.policy.interval
                self._scale()
        self._shutdown()
        self.engine.dispose()

    def _scale(self) -> None:
        try:
            with Session(self.engine) as session:
                depth = queue.claimable_depth(session, utcnow())
        except SQLAlchemyError:  # the database is restarting: keep the slots as they are
            log.warning("cannot measure the task queue; keeping %d slot(s)", len(self.slots), exc_info=True)
            return
        self.metrics.queue_depth.set(depth)
        self._resize(target_slots(len(self.slots), depth, self.policy), depth)

    def _resize(self, target: int, depth: int) -> None:
        current = len(self.slots)
        if target == current:
            return
        direction = "up" if target > current else "down"
        log.info("scaling %s from %d to %d slot(s) (queue depth %d)", direction, current, target, depth)
        if target > current:
            self.slots += [self._start() for _ in range(target - current)]
        else:
            self._retire(current - target)
        self.metrics.scaled_slots_total.labels(direction).inc(abs(target - current))
        self.metrics.slots.set(len(self.slots))

    def _start(self) -> BaseProcess:
        args = (self.engine, self._fds, self.settings, self.handlers, self.build)
        slot = self.context.Process(target=_slot_main, args=args, daemon=False)
        with held_for_fork():
            slot.start()
        return slot

    def _retire(self, count: int) -> None:
        """Drain ``count`` slots, idle ones (holding no lease) first."""
        busy = self._busy_pids()
        chosen = sorted(self.slots, key=lambda slot: slot.pid in busy)[:count]
        for slot in chosen:
            self.slots.remove(slot)
            self.retiring.append(slot)
            if slot.pid is not None and slot.is_alive():
                os.kill(slot.pid, signal.SIGUSR1)

    def _busy_pids(self) -> set[int]:
        prefix = worker_id_prefix()
        try:
            with Session(self.engine) as session:
                owners = queue.lease_owners(session, prefix)
        except SQLAlchemyError:
            return set()  # unknown: retire any slot, a busy one finishes its task first
        return {int(pid) for owner in owners if (pid := owner[len(prefix) :].partition(":")[0]).isdigit()}

    def _replace_dead(self) -> None:
        for index, slot in enumerate(self.slots):
            if not slot.is_alive():
                log.warning("worker slot %d exited (%s); restarting", index, slot.exitcode)
                forget_process(slot.pid, self.metrics_dir)
                self.slots[index] = self._start()
        for slot in [slot for slot in self.retiring if not slot.is_alive()]:
            slot.join()
            forget_process(slot.pid, self.metrics_dir)
            self.retiring.remove(slot)
            log.info("retired worker slot %s exited", slot.pid)

    def _shutdown(self) -> None:
        every = self.slots + self.retiring
        for slot in every:
            if slot.pid is not None and slot.is_alive():
                os.kill(slot.pid, signal.SIGTERM)
        for slot in every:
            slot.join()


def run_scaled_workers(
    settings: Settings,
    handlers: TaskHandlers,
    build: BuildServices,
    policy: ScalePolicy,
    *,
    metrics_dir: str | None = None,
) -> None:
    """Run slots between ``policy.minimum`` and ``policy.maximum`` until SIGTERM; one slot on SQLite.

    ``metrics_dir``: see ``hmacfs.tasks.worker.run_workers``.
    """
    if not settings.serves_many_processes:
        log.warning("SQLite serves one process: running 1 task slot, without scaling")
        serve_worker_metrics(settings, metrics_dir)
        run_slot(settings, handlers, build)
        return
    supervisor = Supervisor(settings, handlers, build, policy, metrics_dir)
    supervisor.serve_metrics()
    supervisor.run()
