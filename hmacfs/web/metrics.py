"""Request metrics (prometheus-flask-exporter) and ``GET /metrics`` for the app."""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from hmacfs.config import MetricsSettings
from hmacfs.metrics import AppMetrics, domain_metrics


def configure_metrics(app: Flask, settings: MetricsSettings) -> AppMetrics:
    """Install request metrics (and ``GET /metrics`` when enabled); return domain metrics."""
    registry = CollectorRegistry()
    if not settings.enabled:
        return domain_metrics(registry)
    exporter_class = GunicornInternalPrometheusMetrics if settings.multiprocess_dir else PrometheusMetrics
    exporter = exporter_class(app, path="/metrics", registry=registry, group_by="url_rule")
    return domain_metrics(exporter.registry)
