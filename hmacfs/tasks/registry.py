"""Task handlers: what code runs each task type, and the table the composition root builds.

Built-in types are handlers named after their type (``"FileCompress"``, ...),
listed in ``hmacfs.composition``. Deployers add their own work as type
``Custom`` in a module named in ``[tasks] handler_modules``::

    # mycompany/hmacfs_tasks.py, listed in [tasks] handler_modules
    from hmacfs.tasks.registry import task_handler
    from hmacfs.tasks.context import TaskContext, TaskError

    def _check(parameters, account_id, session, settings):
        if not isinstance(parameters.get("url"), str):
            raise ValueError("url: required string")

    @task_handler("fetch-url", validate=_check)
    def fetch_url(ctx: TaskContext) -> None:
        for done in range(10):
            ctx.checkpoint(done, 10)   # progress, lease renewal, pause/cancel point
            ...
        ctx.results["bytes"] = 1234

and submit ``{"type": "Custom", "parameters": {"handler": "fetch-url", "url": "..."}}``
(the handler name is stored in ``tasks.custom_type``). ``task_handler`` only
marks the function; the composition root imports each listed module once, at
start-up, and takes the marked functions it finds (``handlers_in``). A handler
runs in a worker process; it reports progress and may be stopped at every
``ctx.checkpoint``; anything it raises fails the task (a ``TaskError`` with its
message, anything else as an internal error). ``validate`` runs when the task
is submitted and raises ``ValueError("field: problem")`` for a 400.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from hmacfs.config import Settings

if TYPE_CHECKING:
    from hmacfs.tasks.context import TaskContext

Validator = Callable[[dict[str, Any], uuid.UUID, Session, Settings], None]
Runner = Callable[["TaskContext"], None]
_MARK = "hmacfs_task_handler"


@dataclass(frozen=True)
class Handler:
    name: str
    run: Runner
    validate: Validator | None
    display_name: str


def task_handler(
    name: str, *, validate: Validator | None = None, display_name: str | None = None
) -> Callable[[Runner], Runner]:
    """Mark the decorated function as the handler called ``name`` (see ``handler_of``)."""

    def mark(run: Runner) -> Runner:
        setattr(run, _MARK, Handler(name, run, validate, display_name or name))
        return run

    return mark


def handler_of(run: Runner) -> Handler:
    """The handler a ``@task_handler`` function declares; TypeError for an unmarked function."""
    found = getattr(run, _MARK, None)
    if not isinstance(found, Handler):
        raise TypeError(f"{run!r} is not a @task_handler")
    return found


def handlers_in(module: ModuleType) -> list[Handler]:
    """The handlers a module defines (its ``@task_handler`` functions), in definition order."""
    return [
        found for value in vars(module).values() if isinstance(found := getattr(value, _MARK, None), Handler)
    ]


def load_handlers(modules: Iterable[str]) -> list[Handler]:
    """Import the deployer's modules (``[tasks] handler_modules``) and take their handlers.

    Raises ImportError for a module that is missing or broken: the server or worker does not start.
    """
    return [found for name in modules for found in handlers_in(importlib.import_module(name))]


class TaskHandlers:
    """The handlers of this server by name: submitting checks against it (the ``TaskTypes``
    port), the worker runs from it. Built once, in the composition root."""

    def __init__(self, handlers: Iterable[Handler], settings: Settings) -> None:
        self._handlers = {found.name: found for found in handlers}
        self._settings = settings

    def find(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def display_name(self, name: str) -> str | None:
        found = self._handlers.get(name)
        return None if found is None else found.display_name

    def validate(
        self, name: str, parameters: dict[str, Any], account_id: uuid.UUID, session: Session
    ) -> None:
        """Run handler ``name``'s validator, if it has one; it raises ``ValueError("field: problem")``."""
        found = self._handlers[name]
        if found.validate is not None:
            found.validate(parameters, account_id, session, self._settings)
