"""Per-request metrics under the names prometheus-flask-exporter gives them:
``flask_http_request_duration_seconds{method,url_rule,status}``,
``flask_http_request_total{method,status}`` and
``flask_http_request_exceptions_total{method,status}`` (dashboards and
``etc/prometheus/hmacfs-alerts.yml`` use them; ``GET /metrics`` itself is not
counted, as before).

The exporter still serves ``/metrics``; these hooks replace its default ones,
which probed the request with four ``hasattr`` calls that each raised
AttributeError through werkzeug's proxy: 11 % of the CPU of a cached 4 KiB
slot GET in-process (py-spy). Here the state is two keys of the WSGI environ.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from flask import Flask, Response, request
from prometheus_client import Counter, Histogram
from prometheus_flask_exporter import PrometheusMetrics

_STARTED = "hmacfs.metrics.started"
_REPORTED = "hmacfs.metrics.reported"
_MAX_CHILDREN = 4096  # methods x rules x statuses: bounded in practice, capped anyway


def install_request_metrics(app: Flask, exporter: PrometheusMetrics) -> None:
    """Register the metrics on the exporter's registry and the hooks that feed them."""
    registry = exporter.registry
    exporter.info(
        "flask_exporter_info", "Information about the Prometheus Flask exporter", version=exporter.version
    )
    duration = Histogram(
        "flask_http_request_duration_seconds",
        "Flask HTTP request duration in seconds",
        ("method", "url_rule", "status"),
        registry=registry,
    )
    total = Counter(
        "flask_http_request_total", "Total number of HTTP requests", ("method", "status"), registry=registry
    )
    exceptions = Counter(
        "flask_http_request_exceptions_total",
        "Total number of HTTP requests which resulted in an exception",
        ("method", "status"),
        registry=registry,
    )
    untracked = exporter.path

    # The labelled children by (method, rule, status): ``labels()`` validates and locks on each call.
    children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _report(status: int) -> None:
        environ = request.environ
        if environ.get(_REPORTED) or _STARTED not in environ:
            return
        environ[_REPORTED] = True
        rule = request.url_rule
        if rule is not None and rule.rule == untracked:
            return
        key = (request.method, str(rule), status)
        found = children.get(key)
        if found is None:
            found = (duration.labels(*key), total.labels(key[0], status))
            if len(children) < _MAX_CHILDREN:
                children[key] = found
        found[0].observe(max(perf_counter() - environ[_STARTED], 0.0))
        found[1].inc()

    @app.before_request
    def _start() -> None:
        request.environ[_STARTED] = perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        _report(response.status_code)
        return response

    @app.teardown_request
    def _count_failure(exc: BaseException | None) -> None:
        if exc is None:
            return
        rule = request.url_rule
        if rule is not None and rule.rule == untracked:
            return
        exceptions.labels(request.method, 500).inc()
        _report(500)
