"""Custom handlers of the in-process task tests (the test settings list this module in
``[tasks] handler_modules``, as a deployer lists theirs)."""

from __future__ import annotations

import time

from hmacfs.tasks.context import TaskContext
from hmacfs.tasks.registry import task_handler


@task_handler("test-noop")
def noop(ctx: TaskContext) -> None:
    ctx.results["ok"] = True


@task_handler("test-sleep")
def sleep(ctx: TaskContext) -> None:
    time.sleep(float(ctx.parameters["seconds"]))


@task_handler("test-count")
def count(ctx: TaskContext) -> None:
    for step in range(3):
        ctx.checkpoint(step, 3)
    ctx.results["echo"] = ctx.parameters["value"]


@task_handler("api-test")
def api_test(ctx: TaskContext) -> None:
    """Does nothing: the task API tests only submit and read tasks."""
