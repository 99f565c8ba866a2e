"""Request metrics (prometheus-flask-exporter) and ``GET /metrics`` for the app."""

from __future__ import annotations

import logging

from flask import Flask, request
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics
from sqlalchemy.exc import SQLAlchemyError

from hmacfs.config import MetricsSettings
from hmacfs.health import operating_state
from hmacfs.metrics import AppMetrics, domain_metrics
from hmacfs.storage import StoreUnavailable
from hmacfs.web.context import services
from hmacfs.web.request_metrics import install_request_metrics

log = logging.getLogger(__name__)


def configure_metrics(app: Flask, settings: MetricsSettings) -> AppMetrics:
    """Install request metrics (and ``GET /metrics`` when enabled); return domain metrics."""
    registry = CollectorRegistry()
    if not settings.enabled:
        return domain_metrics(registry)
    exporter_class = GunicornInternalPrometheusMetrics if settings.multiprocess_dir else PrometheusMetrics
    exporter = exporter_class(app, path="/metrics", registry=registry, export_defaults=False)
    install_request_metrics(app, exporter)
    return domain_metrics(exporter.registry)


def sample_state_on_scrape(app: Flask, metrics: AppMetrics) -> None:
    """Before each ``GET /metrics`` (once it passed the monitoring guard), set the gauges
    sampled rather than counted: this node's storage, and the database's pending tasks
    and stale uploads (the same on every node: alert on max). Gauges, not a collector,
    because under gunicorn the exporter reads only the workers' multiprocess files."""

    @app.before_request
    def _sample() -> None:
        if request.path != "/metrics":
            return
        found = services()
        try:
            with found.db.sessions() as session:
                state = operating_state(session, found.store, found.clock.now())
        except (OSError, SQLAlchemyError, StoreUnavailable):
            log.warning("metrics: the operating state could not be sampled", exc_info=True)
            return
        if state.storage is not None:
            metrics.storage_free_bytes.set(state.storage.free)
            metrics.storage_size_bytes.set(state.storage.total)
        metrics.tasks_pending.set(state.tasks_pending)
        metrics.uploads_stale.set(state.uploads_stale)
