"""Prometheus metrics: request metrics from prometheus-flask-exporter plus the
domain metrics, all declared here with fixed label sets.

Under gunicorn (``metrics.multiprocess_dir`` set) every worker writes to the
shared directory and ``/metrics`` aggregates them, so counters add up.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from hmacfs.config import MetricsSettings

_BYTE_BUCKETS = tuple(float(1024**2 * n) for n in (0.0625, 1, 5, 16, 64, 256, 1024, 4096))


@dataclass(frozen=True)
class AppMetrics:
    uploads_total: Counter
    upload_bytes_total: Counter
    upload_errors_total: Counter
    download_bytes_total: Counter
    upload_size_bytes: Histogram
    tasks_total: Counter


def configure_metrics(app: Flask, settings: MetricsSettings) -> AppMetrics:
    """Install request metrics (and ``GET /metrics`` when enabled); return domain metrics."""
    registry = CollectorRegistry()
    if not settings.enabled:
        return _domain_metrics(registry)
    exporter_class = GunicornInternalPrometheusMetrics if settings.multiprocess_dir else PrometheusMetrics
    exporter = exporter_class(app, path="/metrics", registry=registry, group_by="url_rule")
    return _domain_metrics(exporter.registry)


def _domain_metrics(registry: CollectorRegistry) -> AppMetrics:
    return AppMetrics(
        uploads_total=Counter("hmacfs_uploads_total", "Completed uploads", ["protocol"], registry=registry),
        upload_bytes_total=Counter(
            "hmacfs_upload_bytes_total", "Bytes received", ["protocol"], registry=registry
        ),
        upload_errors_total=Counter(
            "hmacfs_upload_errors_total",
            "Rejected or failed uploads",
            ["protocol", "code"],
            registry=registry,
        ),
        download_bytes_total=Counter(
            "hmacfs_download_bytes_total", "Bytes sent by downloads", registry=registry
        ),
        upload_size_bytes=Histogram(
            "hmacfs_upload_size_bytes",
            "Size of completed uploads",
            ["protocol"],
            buckets=_BYTE_BUCKETS,
            registry=registry,
        ),
        tasks_total=Counter(
            "hmacfs_tasks_total", "Background tasks finished", ["type", "status"], registry=registry
        ),
    )
