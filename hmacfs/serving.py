"""Running hmacfs under gunicorn with gevent workers.

``gunicorn_options`` is the one place that turns settings into gunicorn
settings; both ``hmacfs serve`` and ``etc/gunicorn.conf.py`` use it.
"""

from __future__ import annotations

import logging
import math
import os
import runpy
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from hmacfs.config import Settings
from hmacfs.logs import RequestIdFilter, configure_logging, json_formatter

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %({x-request-id}o)s'


class JsonGunicornLogger(Logger):  # type: ignore[misc]
    """gunicorn's own error and access lines as JSON, when ``[logging] format = "json"``."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.addFilter(RequestIdFilter())
                handler.setFormatter(json_formatter())


WORKER_CLASS = "hmacfs.http_worker.HmacfsGeventWorker"  # gunicorn imports it in the master


def prepare_metrics_dir() -> str:
    """Give the workers a shared, empty directory for multiprocess metrics.

    Must run before prometheus_client is imported in the workers (it reads the
    variable at import), hence before gunicorn forks.
    """
    path = os.environ.get(METRICS_ENV) or tempfile.mkdtemp(prefix="hmacfs-metrics-")
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in Path(path).glob("*.db"):
        stale.unlink()
    os.environ[METRICS_ENV] = path
    return path


def worker_metrics_dir() -> str:
    """A fresh directory for the multiprocess metrics of one ``hmacfs worker``
    (hmacfs.tasks.exporter), never shared with ``hmacfs serve``'s, which the worker's
    start would otherwise wipe. Must run before prometheus_client is imported."""
    path = tempfile.mkdtemp(prefix="hmacfs-metrics-worker-")
    os.environ[METRICS_ENV] = path
    return path


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    timeouts = settings.timeouts
    return {
        "bind": [settings.server.bind],
        "workers": settings.server.workers,
        # gunicorn's gevent worker with a lazy 100 Continue and bounded request heads.
        "worker_class": WORKER_CLASS,
        "worker_connections": settings.server.worker_connections,
        # gevent workers heartbeat from their own greenlet, so a long upload
        # does not trip this; it only catches a worker whose loop is stuck.
        "timeout": int(timeouts.readtimeout.total_seconds()),
        "graceful_timeout": int(timeouts.graceful.total_seconds()),
        # The worker applies timeouts.idletimeout and request_head itself; gunicorn
        # bounds request heads only while keep-alive is on (>= 1 s).
        "keepalive": max(1, math.ceil(timeouts.idletimeout.total_seconds())),
        "accesslog": "-" if settings.logging.access_log else None,
        # The request id (X-Request-ID, from nginx or made by hmacfs.web.request_ids) ends each line.
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "logger_class": JsonGunicornLogger
        if settings.logging.format == "json"
        else "gunicorn.glogging.Logger",
        "loglevel": settings.logging.level.lower(),
        # gunicorn 27's control socket sits at one fixed path per user, so two
        # servers on a host (tests, blue/green) would fight over it; we do not use it.
        "control_socket_disable": True,
        "post_fork": post_fork,
        "post_worker_init": post_worker_init,
        "child_exit": child_exit,
    }


def post_fork(server: Any, worker: Any) -> None:
    """Make psycopg2 cooperative before the worker opens any connection."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


def post_worker_init(worker: Any) -> None:
    """Start this worker's background greenlets (the periodic cleanup, event delivery, the
    interface monitor).

    Every worker runs the loops; locks let one cleanup pass and one webhook
    deliverer run at a time.
    """
    import gevent

    from hmacfs.composition import cleanup_steps
    from hmacfs.events.delivery import start_event_delivery
    from hmacfs.maintenance import cleanup_forever
    from hmacfs.uploads.running_hash import start_advancing
    from hmacfs.web.adaptive import save_in_background
    from hmacfs.xep0363.slot_cache import FILES_CHANNEL

    services = worker.wsgi.extensions["hmacfs"]
    save_in_background(worker.wsgi)
    gevent.spawn(cleanup_forever, services, cleanup_steps(), gevent.sleep)
    start_advancing(services, gevent.spawn)
    start_event_delivery(
        gevent.spawn,
        db=services.db,
        hub=services.hub,
        settings=services.settings.events,
        locker=services.locker,
        clock=services.clock,
        watchers={FILES_CHANNEL: services.slot_cache},
    )
    gevent.spawn(_close_sockets_on_exit, worker, services, gevent.sleep)
    if services.settings.network_resilience.multi_interface_enabled:
        from hmacfs.network.monitor import monitor_forever

        # Every worker runs it; the node's lock lets one watch (hmacfs.network.monitor).
        gevent.spawn(monitor_forever, services, gevent.sleep, alive=lambda: worker.alive)


def _close_sockets_on_exit(worker: Any, services: Any, sleep: Any) -> None:
    """On shutdown close the WebSockets at once instead of holding the graceful
    timeout open: clients reconnect (to another worker) with ``since``."""
    while worker.alive:
        sleep(0.2)
    services.hub.close_all()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get(METRICS_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class HmacfsServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with hmacfs's settings, an optional gunicorn.conf.py, then CLI overrides."""

    def __init__(self, settings: Settings, conf_file: Path | None, overrides: dict[str, Any]) -> None:
        self.settings = settings
        self.conf_file = conf_file
        self.overrides = overrides
        super().__init__()

    def load_config(self) -> None:
        options = gunicorn_options(self.settings)
        if self.conf_file is not None:
            found = runpy.run_path(str(self.conf_file), {"hmacfs_settings": self.settings})
            options.update(found)
        options.update({k: v for k, v in self.overrides.items() if v is not None})
        options["workers"] = worker_count(self.settings, int(options["workers"]))
        for key, value in options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from hmacfs.app import create_app

        configure_logging(self.settings.logging)
        return create_app(self.settings)


def worker_count(settings: Settings, requested: int) -> int:
    """How many gevent workers to fork: as asked on PostgreSQL, one on SQLite.

    SQLite serves one process: its upload writer locks, tus running hashes and
    event wake-ups live in that process's memory, so a second worker could
    interleave two writes of one upload.
    """
    if requested > 1 and not settings.serves_many_processes:
        logging.getLogger(__name__).warning(
            "SQLite serves one process: running 1 worker instead of %d (use PostgreSQL for more)", requested
        )
        return 1
    return requested


def cleanup_metrics_dir(path: str) -> None:
    if path.startswith(tempfile.gettempdir()) and "hmacfs-metrics-" in path:
        shutil.rmtree(path, ignore_errors=True)
