"""Handlers the tasks benchmark loads into its workers (``tasks.handler_modules``)."""

from __future__ import annotations

import os

from sqlalchemy import text

from hmacfs.tasks.context import TaskContext
from hmacfs.tasks.registry import task_handler


@task_handler("bench-noop")
def noop(ctx: TaskContext) -> None:
    """Records one effect row in the same transaction that completes the task.

    A worker killed before that commit leaves no row (the retry writes it); a
    worker that lost its lease cannot commit (``finishing`` checks the lease
    under a row lock). So each task's effect commits exactly once.
    """
    with ctx.finishing() as session:
        session.execute(
            text("INSERT INTO bench_effects (task_id, worker_pid) VALUES (:t, :p)"),
            {"t": ctx.task_id, "p": os.getpid()},
        )
