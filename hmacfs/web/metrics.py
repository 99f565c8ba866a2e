"""Request metrics (prometheus-flask-exporter) and ``GET /metrics`` for the app."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics
from sqlalchemy.exc import SQLAlchemyError

from hmacfs.config import MetricsSettings
from hmacfs.health import operating_state
from hmacfs.metrics import AppMetrics, domain_metrics

log = logging.getLogger(__name__)

# The gauges StateCollector samples at each scrape: name -> help.
STATE_GAUGES = {
    "hmacfs_storage_free_bytes": "Free storage bytes",
    "hmacfs_storage_size_bytes": "Size of the storage",
    "hmacfs_tasks_pending": "Pending background tasks",
    "hmacfs_uploads_stale": "Open uploads idle for over an hour",
}


def configure_metrics(app: Flask, settings: MetricsSettings) -> AppMetrics:
    """Install request metrics (and ``GET /metrics`` when enabled); return domain metrics."""
    registry = CollectorRegistry()
    if not settings.enabled:
        return domain_metrics(registry)
    exporter_class = GunicornInternalPrometheusMetrics if settings.multiprocess_dir else PrometheusMetrics
    exporter = exporter_class(app, path="/metrics", registry=registry, group_by="url_rule")
    exporter.registry.register(StateCollector(app))
    return domain_metrics(exporter.registry)


class StateCollector(Collector):
    """Gauges sampled at each scrape by the worker that serves it: this node's storage, and
    the database's pending tasks and stale uploads (the same on every node: alert on max)."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def collect(self) -> Iterator[Metric]:
        services = self._app.extensions.get("hmacfs")
        if services is None:
            return
        try:
            with services.db.sessions() as session:
                state = operating_state(session, services.store, services.clock.now())
        except (OSError, SQLAlchemyError):
            log.warning("metrics: the operating state could not be sampled", exc_info=True)
            return
        values = (state.storage_free_bytes, state.storage_size_bytes, state.tasks_pending)
        for (name, text), value in zip(STATE_GAUGES.items(), (*values, state.uploads_stale), strict=True):
            yield GaugeMetricFamily(name, text, value)
