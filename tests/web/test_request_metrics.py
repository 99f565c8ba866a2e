"""flask_http_request_* (hmacfs.web.request_metrics): the names, labels and rules of
prometheus-flask-exporter's defaults, which dashboards and the alert rules read."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient


def _samples(client: FlaskClient) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(flask_\w+\{[^}]*\}|flask_\w+) (\S+)", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def test_a_request_is_counted_once_with_its_rule_and_status(client: FlaskClient) -> None:
    assert client.get("/health").status_code == 200
    assert client.get("/api/tasks").status_code == 401
    samples = _samples(client)
    assert samples['flask_http_request_total{method="GET",status="200"}'] == 1
    assert samples['flask_http_request_total{method="GET",status="401"}'] == 1
    health = 'flask_http_request_duration_seconds_count{method="GET",status="200",url_rule="/health"}'
    assert samples[health] == 1
    tasks = 'flask_http_request_duration_seconds_count{method="GET",status="401",url_rule="/api/tasks"}'
    assert samples[tasks] == 1
    assert 'flask_exporter_info{version="' in client.get("/metrics").get_data(as_text=True)


def test_the_scrape_itself_is_not_counted(client: FlaskClient) -> None:
    for _ in range(3):
        _samples(client)
    assert not any('url_rule="/metrics"' in name for name in _samples(client))
    assert 'flask_http_request_total{method="GET",status="200"}' not in _samples(client)


def test_an_unexpected_exception_counts_once_as_a_500(app: Flask) -> None:
    @app.get("/_test/boom")
    def _boom() -> str:
        raise RuntimeError("boom")

    client = app.test_client()
    assert client.get("/_test/boom").status_code == 500
    samples = _samples(client)
    # hmacfs's error handler answers it, so no exception reaches the teardown (as before)
    assert not any(name.startswith("flask_http_request_exceptions_total{") for name in samples)
    assert samples['flask_http_request_total{method="GET",status="500"}'] == 1
    rule = 'flask_http_request_duration_seconds_count{method="GET",status="500",url_rule="/_test/boom"}'
    assert samples[rule] == 1
