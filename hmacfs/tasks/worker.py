"""``hmacfs worker``: processes that claim tasks, run their handlers and hold leases.

Concurrency is one OS process per slot, not a thread pool: the handlers are
CPU-bound (deflate, AES-GCM, image decoding hold the GIL for much of their
work) as well as I/O-bound, a crash or ``kill -9`` then costs one slot and its
one task (which another slot or machine retries when the lease lapses), and
each slot's memory stays bounded on its own. A supervising parent restarts a
slot that dies and forwards SIGTERM. SQLite serves one process, so there the
worker always runs a single slot in-process.

SIGTERM: the running task stops at its next checkpoint, saves it, and is
released back to Pending without counting an attempt; idle slots exit at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess

from hmacfs.config import Settings
from hmacfs.container import Services
from hmacfs.tasks import queue
from hmacfs.tasks.context import TaskContext, TaskError, TaskStopped
from hmacfs.tasks.exporter import forget_process, serve_metrics
from hmacfs.tasks.output import discard_partial_output
from hmacfs.tasks.queue import ClaimedTask
from hmacfs.tasks.registry import TaskHandlers
from hmacfs.tasks.signals import STOP_SIGNALS, held_for_fork, relay_signals

log = logging.getLogger(__name__)


def worker_id_prefix() -> str:
    """What the lease owner of every slot on this host starts with: ``host:`` (then ``pid:nonce``)."""
    return f"{socket.gethostname()[:80]}:"


def worker_id() -> str:
    return f"{worker_id_prefix()}{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ClaimSize:
    """How many tasks a slot claims at once: one, unless the queue is deep and its tasks short.

    Claiming several saves a transaction per task, but the claimed tasks wait for
    this slot while others may be idle. So the size doubles (up to
    ``tasks.claim_batch``) only while claims come back full (the queue is deeper
    than the batch) and a whole batch would still run within ``WINDOW``; it drops
    to one as soon as a claim comes back short, and halves when a batch took longer.
    """

    WINDOW = 0.05  # seconds a claimed task may wait for its slot, about

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 1

    def update(self, asked: int, got: int, seconds: float) -> None:
        """Learn from a claim of ``asked`` tasks of which ``got`` came back and ran, in ``seconds``."""
        if got < asked:
            self.size = 1
            return
        per_task = seconds / got
        if per_task * min(self.limit, self.size * 2) <= self.WINDOW:
            self.size = min(self.limit, self.size * 2)
        elif per_task * self.size > self.WINDOW:
            self.size = max(1, self.size // 2)


class Worker:
    """One slot: claim, run with its handler from ``handlers``, repeat until ``stop`` is set.

    ``drain`` (scaling down) ends the loop too, but lets the running task finish;
    claimed tasks not started yet go back to the queue.
    """

    def __init__(
        self,
        services: Services,
        stop: threading.Event,
        handlers: TaskHandlers,
        drain: threading.Event | None = None,
    ) -> None:
        self.services = services
        self.stop = stop
        self.drain = drain or threading.Event()
        self.handlers = handlers
        self.owner = worker_id()
        self._next_requeue = 0.0
        self.claim_size = ClaimSize(services.settings.tasks.claim_batch)
        # A claimed task still waiting this long (a task before it ran long) goes back to the
        # queue for an idle slot, well before its lease could lapse.
        lease = services.settings.tasks.lease_duration.total_seconds()
        self._give_back_after = min(10 * ClaimSize.WINDOW, lease / 2)

    def run_forever(self) -> None:
        poll = self.services.settings.tasks.poll_interval.total_seconds()
        while not (self.stop.is_set() or self.drain.is_set()):
            try:
                busy = self.run_once()
            except Exception:  # e.g. the database is restarting: keep the slot, retry after a pause
                log.exception("worker loop failed; retrying")
                busy = False
                self.stop.wait(max(poll, 1.0))
            if not busy:
                self.stop.wait(poll)

    def run_once(self) -> bool:
        """Claim and run one batch; False when there was nothing to do."""
        self._requeue_lapsed()
        asked = self.claim_size.size
        tasks = self._claim(asked)
        started, ran = time.monotonic(), 0
        for index, task in enumerate(tasks):
            late = index and time.monotonic() - started > self._give_back_after
            if self.stop.is_set() or self.drain.is_set() or late:
                self._release(task)
                continue
            self.run_task(task)
            ran += 1
        # Tasks given back count as a short claim: claim one at a time again.
        self.claim_size.update(asked, ran, time.monotonic() - started)
        return bool(tasks)

    def _requeue_lapsed(self) -> None:
        if time.monotonic() < self._next_requeue:
            return
        # A lease can only lapse once per lease_duration: looking every half lease finds a
        # dead worker's task within 1.5 leases without a scan on every claim.
        settings = self.services.settings.tasks
        period = max(settings.poll_interval.total_seconds(), settings.lease_duration.total_seconds() / 2)
        self._next_requeue = time.monotonic() + period
        with self.services.db.sessions() as session:
            queue.requeue_lapsed(session, self.services, self.services.clock.now())
            session.commit()

    def _claim(self, limit: int) -> list[ClaimedTask]:
        lease = self.services.settings.tasks.lease_duration
        with self.services.db.sessions() as session:
            tasks = queue.claim_tasks(session, self.owner, self.services.clock.now(), lease, limit)
            session.commit()
            return tasks

    def _release(self, task: ClaimedTask) -> None:
        with self.services.db.sessions() as session:
            queue.release_task(session, task.id, self.owner, self.services.clock.now())
            session.commit()

    def run_task(self, task: ClaimedTask) -> None:
        ctx = TaskContext.for_task(self.services, task, self.owner, self.stop)
        handler = self.handlers.find(task.custom_type or task.type)
        try:
            if handler is None:
                raise TaskError(f"no handler for {task.custom_type or task.type!r} in this worker")
            handler.run(ctx)
            if not ctx.completed:
                with ctx.finishing():
                    pass
            discard_partial_output(self.services, task.task_id)  # what earlier, interrupted runs left
        except TaskStopped as stopped:
            self._stopped(ctx, stopped.reason)
        except TaskError as exc:
            self._fail(ctx, str(exc))
        except Exception as exc:
            log.exception("task %s (%s) crashed", task.task_id, task.type)
            self._fail(ctx, f"internal error ({type(exc).__name__})")

    def _stopped(self, ctx: TaskContext, reason: str) -> None:
        log.info("task %s stopped: %s", ctx.task_id, reason)
        now = self.services.clock.now()
        with self.services.db.sessions() as session:
            if reason == "cancelled":
                queue.finish_cancelled(session, self.services, ctx.row_id, self.owner, now)
            elif reason in ("paused", "shutdown"):
                queue.release_task(session, ctx.row_id, self.owner, now)
            session.commit()

    def _fail(self, ctx: TaskContext, message: str) -> None:
        with self.services.db.sessions() as session:
            task = queue.lock_owned(session, ctx.row_id, self.owner)
            if task is None:
                reason = ctx._why_stopped(session)
                session.rollback()
                self._stopped(ctx, reason)
                return
            queue.fail_task(session, self.services, task, message, self.services.clock.now())
            session.commit()


# -- processes --------------------------------------------------------------------------
# Builds a slot's services (no pre-ping: see run_slot) around the handlers loaded in the parent.
BuildServices = Callable[[Settings, TaskHandlers], Services]


def run_slot(
    settings: Settings, handlers: TaskHandlers, build: BuildServices, *, drain: threading.Event | None = None
) -> None:
    """Run one slot in this process until SIGTERM/SIGINT (or ``drain`` is set: see Worker).

    With ``drain``, SIGUSR1 sets it (the supervisor's retirement, hmacfs.tasks.scaling).
    """
    stop = threading.Event()
    relayed = dict.fromkeys(STOP_SIGNALS, stop)
    if drain is not None:
        relayed[signal.SIGUSR1] = drain
    relay_signals(relayed)
    # No pre-ping: run_forever retries after any database error, and a dropped
    # connection fails once and is invalidated; the ping cost a round trip per claim.
    services = build(settings, handlers)
    services.store.ensure_layout()
    try:
        Worker(services, stop, handlers, drain).run_forever()
    finally:
        services.db.engine.dispose()


def run_workers(
    settings: Settings,
    concurrency: int,
    handlers: TaskHandlers,
    build: BuildServices,
    *,
    metrics_dir: str | None = None,
) -> None:
    """Run ``concurrency`` slots (one on SQLite) and restart any that dies, until SIGTERM.

    ``handlers`` come from the composition root, which imported the handler modules
    before this is called, so a broken one stops the command at once instead of
    crashing every slot in a loop. ``build`` makes each slot's services. With
    ``metrics_dir`` (see hmacfs.tasks.exporter), ``[workers] metrics_bind`` serves
    the metrics of every slot.
    """
    fds = serve_worker_metrics(settings, metrics_dir)
    if concurrency <= 1 or not settings.serves_many_processes:
        run_slot(settings, handlers, build)
        return
    stop = threading.Event()
    relay_signals(dict.fromkeys(STOP_SIGNALS, stop))
    context = multiprocessing.get_context("fork")
    slot_args = (fds, settings, handlers, build)

    def _start() -> BaseProcess:
        slot = context.Process(target=_forked_slot, args=slot_args, daemon=False)
        with held_for_fork():
            slot.start()
        return slot

    slots = [_start() for _ in range(concurrency)]
    while not stop.wait(0.5):
        for index, slot in enumerate(slots):
            if not slot.is_alive():
                log.warning("worker slot %d exited (%s); restarting", index, slot.exitcode)
                forget_process(slot.pid, metrics_dir)
                slots[index] = _start()
    for slot in slots:
        if slot.pid is not None and slot.is_alive():
            os.kill(slot.pid, signal.SIGTERM)
    for slot in slots:
        slot.join()


def serve_worker_metrics(settings: Settings, metrics_dir: str | None) -> tuple[int, ...]:
    """Serve ``/metrics`` on ``[workers] metrics_bind`` when set; the descriptors forked
    slots must close (the listening socket). Raises MetricsBindError."""
    bind = settings.workers.metrics_bind
    if not bind or metrics_dir is None:
        return ()
    try:
        return (serve_metrics(bind, metrics_dir),)
    except OSError as exc:  # taken, or an address this host does not have
        raise MetricsBindError(f"workers.metrics_bind {bind}: {exc.strerror or exc}") from None


class MetricsBindError(Exception):
    """``[workers] metrics_bind`` cannot be listened on; ``str()`` names the setting."""


def _forked_slot(
    fds: Sequence[int], settings: Settings, handlers: TaskHandlers, build: BuildServices
) -> None:
    """A forked slot: close the supervisor's metrics socket, then run."""
    for fd in fds:
        os.close(fd)
    run_slot(settings, handlers, build)
