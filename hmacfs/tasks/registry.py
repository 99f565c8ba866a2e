"""The task handler registry: what code runs each task type.

Built-in types register under their type name (``"FileCompress"``, ...).
Deployers add their own work as type ``Custom``::

    # mycompany/hmacfs_tasks.py, listed in [tasks] handler_modules
    from hmacfs.tasks.registry import task_handler
    from hmacfs.tasks.context import TaskContext, TaskError

    def _check(parameters, account_id, session, services):
        if not isinstance(parameters.get("url"), str):
            raise ValueError("url: required string")

    @task_handler("fetch-url", validate=_check)
    def fetch_url(ctx: TaskContext) -> None:
        for done in range(10):
            ctx.checkpoint(done, 10)   # progress, lease renewal, pause/cancel point
            ...
        ctx.results["bytes"] = 1234

and submit ``{"type": "Custom", "parameters": {"handler": "fetch-url", "url": "..."}}``
(the handler name is stored in ``tasks.custom_type``). A handler runs in a
worker process; it reports progress and may be stopped at every
``ctx.checkpoint``; anything it raises fails the task (a ``TaskError`` with
its message, anything else as an internal error). ``validate`` runs when the
task is submitted and raises ``ValueError("field: problem")`` for a 400.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from hmacfs.container import Services
    from hmacfs.tasks.context import TaskContext

Validator = Callable[[dict[str, Any], uuid.UUID, Session, "Services"], None]
Runner = Callable[["TaskContext"], None]


@dataclass(frozen=True)
class Handler:
    name: str
    run: Runner
    validate: Validator | None
    display_name: str


_HANDLERS: dict[str, Handler] = {}


def task_handler(
    name: str, *, validate: Validator | None = None, display_name: str | None = None
) -> Callable[[Runner], Runner]:
    """Register the decorated function as the handler called ``name``."""

    def register(run: Runner) -> Runner:
        _HANDLERS[name] = Handler(name, run, validate, display_name or name)
        return run

    return register


def find_handler(name: str) -> Handler | None:
    return _HANDLERS.get(name)


def load_handler_modules(modules: Iterable[str]) -> None:
    """Import the built-in handlers and the deployer's modules (each registers on import)."""
    importlib.import_module("hmacfs.tasks.handlers")
    for module in modules:
        importlib.import_module(module)
