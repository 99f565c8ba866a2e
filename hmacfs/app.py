"""The composition root: ``create_app`` builds every dependency and wires the web layer.

Nothing here runs at import time; database connections open on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import Flask, Response, g
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from hmacfs.composition import build_services
from hmacfs.config import Settings, load_settings
from hmacfs.container import Services
from hmacfs.metrics import AppMetrics, watch_pool
from hmacfs.web.adaptive import configure_adaptive
from hmacfs.web.cors import configure_cors
from hmacfs.web.errors import DATABASE_UNAVAILABLE, database_unavailable, register_error_handlers
from hmacfs.web.metrics import configure_metrics, sample_state_on_scrape
from hmacfs.web.monitoring import restrict_monitoring
from hmacfs.web.params import register_input_guards
from hmacfs.web.ratelimit import install_rate_limits
from hmacfs.web.request_ids import configure_request_ids

log = logging.getLogger(__name__)


class _Hmacfs(Flask):
    """Flask, remembering which hooks and views are plain functions.

    Flask asks ``inspect.iscoroutinefunction`` of every hook and view on every request
    (about 16 per request here); the functions are registered once, so the answer is kept.
    """

    _MAX_REMEMBERED = 1024  # hooks, views and error handlers: a few dozen in practice

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        found = self._sync.get(func)
        if found is None:
            found = super().ensure_sync(func)
            if len(self._sync) < self._MAX_REMEMBERED:
                self._sync[func] = found
        return found


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Create the WSGI application. Raises ConfigError for bad settings."""
    settings = settings or load_settings()
    app = _Hmacfs("hmacfs", static_folder=None)  # hmacfs.web.page serves /static/
    app.config["MAX_CONTENT_LENGTH"] = None
    app.json.sort_keys = False  # type: ignore[attr-defined]
    services = build_services(settings, **overrides)
    metrics = configure_metrics(app, settings.metrics)
    _publish_metrics(services, metrics)
    app.extensions["hmacfs"] = replace(services, metrics=metrics)
    _configure_proxy(app, settings)
    configure_request_ids(app)
    _configure_request_session(app)
    register_error_handlers(app)
    register_input_guards(app)
    restrict_monitoring(app, settings.metrics)
    sample_state_on_scrape(app, metrics)
    install_rate_limits(app, app.extensions["hmacfs"])
    configure_cors(app, settings)
    configure_adaptive(app)
    _register_blueprints(app)
    return app


def _publish_metrics(services: Services, metrics: AppMetrics) -> None:
    """The process-wide parts that publish metrics without a request: the event hub and the pool."""
    services.hub.metrics = metrics
    settings = services.settings
    if settings.metrics.multiprocess_dir:  # a served process (hmacfs serve): one app per process
        watch_pool(services.db.engine, metrics, settings.database.pool_size + settings.database.max_overflow)


def _configure_proxy(app: Flask, settings: Settings) -> None:
    hops = settings.server.trusted_proxy_count
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )


def _configure_request_session(app: Flask) -> None:
    """The request boundary: commit after a successful response, roll back otherwise."""

    @app.after_request
    def _commit(response: Response) -> Response:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            try:
                if response.status_code < 400:
                    session.commit()
                else:
                    session.rollback()
            except DATABASE_UNAVAILABLE as exc:
                # Raised here, past the view, Flask's error handlers would not see it:
                # answered like any other lost database (503), the transaction undone.
                session.rollback()
                return database_unavailable(exc)
            finally:
                session.close()
        return response

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()


def _register_blueprints(app: Flask) -> None:
    from hmacfs.web.api_docs import api_docs
    from hmacfs.web.bundles import bundles_api
    from hmacfs.web.chunked import chunked
    from hmacfs.web.downloads import downloads
    from hmacfs.web.drive import register_drive
    from hmacfs.web.health import health
    from hmacfs.web.multipart import multipart
    from hmacfs.web.page import page
    from hmacfs.web.pools import pools_api
    from hmacfs.web.quotas import quotas_api
    from hmacfs.web.tasks import tasks_api
    from hmacfs.web.tus import tus
    from hmacfs.web.ws import ws
    from hmacfs.web.xep0363 import xep0363

    app.register_blueprint(health)
    app.register_blueprint(page)
    app.register_blueprint(api_docs)
    app.register_blueprint(ws)
    app.register_blueprint(tasks_api)
    app.register_blueprint(bundles_api)
    app.register_blueprint(pools_api)
    app.register_blueprint(quotas_api)
    # The chunked API's exact /upload/... routes win over the slot paths below.
    app.register_blueprint(chunked)
    register_drive(app)
    app.register_blueprint(tus)
    app.register_blueprint(downloads)
    app.register_blueprint(multipart)
    app.register_blueprint(
        xep0363, url_prefix=app.extensions["hmacfs"].settings.xep0363.base_path.rstrip("/")
    )
