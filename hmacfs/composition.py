"""What the composition root wires in, listed once: cleanup steps and task handlers.

``create_app`` (``hmacfs.app``) and the commands that build no Flask app
(``hmacfs cleanup``, ``hmacfs worker`` in ``hmacfs.cli``) call these, so every
process runs the same steps and handlers. Nothing registers itself on import:
to add a cleanup step or a built-in task type, add it to a list here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session

from hmacfs import container
from hmacfs.config import Settings
from hmacfs.container import Services
from hmacfs.events.log import purge_events
from hmacfs.files import collect_blobs, expire_files
from hmacfs.files.orphans import collect_orphan_files
from hmacfs.maintenance import CleanupStep
from hmacfs.metrics import domain_metrics, watch_pool
from hmacfs.network.profiles import expire_profiles
from hmacfs.tasks.handlers import archives, encryption, files, images, migration
from hmacfs.tasks.output import discard_stray_pool_parts
from hmacfs.tasks.queries import cleanup_step as expire_finished_tasks
from hmacfs.tasks.registry import TaskHandlers, handler_of, load_handlers
from hmacfs.uploads.chunks import remove_stale_scratch
from hmacfs.uploads.queries import expire_stale_uploads
from hmacfs.uploads.reservations import release_idle_reservations
from hmacfs.uploads.writers import remove_stale_writers

# The task types this server runs itself; ``[tasks] handler_modules`` adds Custom ones.
BUILTIN_HANDLERS = (
    files.move_files,  # FileMove
    files.bulk,  # BulkOperation
    archives.compress,  # FileCompress
    archives.decompress,  # FileDecompress
    encryption.encrypt,  # FileEncrypt
    encryption.decrypt,  # FileDecrypt
    images.convert,  # FileConversion
    migration.migrate,  # StorageMigration
)


def task_handlers(settings: Settings) -> TaskHandlers:
    """The built-in handlers and those of ``[tasks] handler_modules`` (imported here, once).

    Raises ImportError for a listed module that is missing or broken.
    """
    builtin = [handler_of(run) for run in BUILTIN_HANDLERS]
    return TaskHandlers([*builtin, *load_handlers(settings.tasks.handler_modules)], settings)


def build_services(settings: Settings, *, handlers: TaskHandlers | None = None, **overrides: Any) -> Services:
    """The process's dependencies with this module's task handlers (``handlers`` if given).

    ``overrides`` as for ``hmacfs.container.build_services``.
    """
    table = handlers if handlers is not None else task_handlers(settings)
    return container.build_services(settings, task_types=table, **overrides)


def worker_services(settings: Settings, handlers: TaskHandlers) -> Services:
    """A ``hmacfs worker`` slot's services: no pre-ping (the slot retries after a database error),
    and the domain metrics, which ``[workers] metrics_bind`` exports (hmacfs.tasks.exporter)."""
    services = build_services(settings, handlers=handlers, pre_ping=False)
    metrics = domain_metrics(CollectorRegistry())  # the worker serves the multiprocess files
    database = settings.database
    watch_pool(services.db.engine, metrics, database.pool_size + database.max_overflow)
    return replace(services, metrics=metrics)


def _expired_files(session: Session, services: Services, now: datetime) -> int:
    return expire_files(session, now)


def _orphan_blobs(session: Session, services: Services, now: datetime) -> int:
    return collect_blobs(session, services.store)


def _orphan_files(session: Session, services: Services, now: datetime) -> int:
    return collect_orphan_files(session, services.store, now)


def _expired_events(session: Session, services: Services, now: datetime) -> int:
    return purge_events(session, services.settings.events.retention, now)


def _stale_writers(session: Session, services: Services, now: datetime) -> int:
    """Rows of silent writers whose process died; a live one updates its row every poll
    while silent, and a writer past ``timeouts.body_idle`` (at most ten times that for
    a slow network class) has given up."""
    return remove_stale_writers(session, now - 10 * services.settings.timeouts.body_idle - _WRITER_MARGIN)


_WRITER_MARGIN = timedelta(minutes=5)


def cleanup_steps() -> tuple[CleanupStep, ...]:
    """Every cleanup step, in the order a pass runs them.

    Order matters: files expire, and stale uploads give up their parts, before
    unreferenced blobs are collected.
    """
    return (
        CleanupStep("files.expired", _expired_files),
        CleanupStep("uploads.stale", expire_stale_uploads),
        CleanupStep("uploads.reservations", release_idle_reservations),
        CleanupStep("blobs.orphaned", _orphan_blobs),
        CleanupStep("files.orphaned", _orphan_files),
        CleanupStep("events.expired", _expired_events),
        CleanupStep("uploads.scratch", remove_stale_scratch),
        CleanupStep("uploads.writers", _stale_writers),
        CleanupStep("tasks.finished", expire_finished_tasks),
        CleanupStep("tasks.stray_parts", discard_stray_pool_parts),
        CleanupStep("network.profiles", expire_profiles),
    )
