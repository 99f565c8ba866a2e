"""The shipped alert rules (etc/prometheus/) and Grafana dashboard (etc/grafana/) are valid
and speak only of metrics hmacfs exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hmacfs.metrics import domain_metrics, worker_metrics

ETC = Path(__file__).resolve().parent.parent / "etc"
RULES = ETC / "prometheus" / "hmacfs-alerts.yml"
DASHBOARD = ETC / "grafana" / "hmacfs-dashboard.json"
PROMTOOL = shutil.which("promtool")


def _exported() -> set[str]:
    """Every series name hmacfs exports (counters' _total, histograms' _bucket/_count/_sum)."""
    registry = CollectorRegistry()
    domain_metrics(registry)
    worker_metrics(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names = {family.name + end for family in registry.collect() for end in suffixes[family.type]}
    return names


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required under CI=true (apt-get install prometheus)")
        pytest.skip("promtool not installed (Debian's prometheus package)")
    return subprocess.run([PROMTOOL, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=60)


def test_promtool_checks_the_rules() -> None:
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "7 rules found" in checked.stdout


def test_promtool_checks_the_example_config() -> None:
    """etc/prometheus/prometheus.yml: valid, with the rules, and a job for web nodes and workers."""
    checked = _promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = re.findall(r"job_name: (\S+)", (RULES.parent / "prometheus.yml").read_text())
    assert jobs == ["hmacfs", "hmacfs-worker"]


def test_each_alert_fires_on_a_bad_series_and_not_on_a_good_one() -> None:
    tested = _promtool("test", "rules", "hmacfs-alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize("path", [RULES, DASHBOARD], ids=["rules", "dashboard"])
def test_only_exported_metrics_are_used(path: Path) -> None:
    used = set(re.findall(r"\bhmacfs_[a-z_]+", path.read_text()))
    assert used, path
    assert used - _exported() == set()


def test_the_dashboard_is_grafana_json_with_a_query_per_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(target["expr"] for target in panel["targets"]), panel["title"]
