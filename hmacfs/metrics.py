"""The domain metrics, declared here with fixed label sets (request metrics and
``GET /metrics`` are wired in ``hmacfs.web.metrics``).

Under gunicorn (``metrics.multiprocess_dir`` set) every worker writes to the
shared directory and ``/metrics`` aggregates them, so counters add up.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BYTE_BUCKETS = tuple(float(1024**2 * n) for n in (0.0625, 1, 5, 16, 64, 256, 1024, 4096))


@dataclass(frozen=True)
class AppMetrics:
    uploads_total: Counter
    upload_bytes_total: Counter
    upload_errors_total: Counter
    download_bytes_total: Counter
    upload_size_bytes: Histogram
    tasks_total: Counter
    rate_limited_total: Counter
    # The network half (issue 14 parts 6 and 7): takeovers, client switches, interface changes.
    upload_takeovers_total: Counter
    upload_network_changes_total: Counter
    network_interface_changes_total: Counter


def domain_metrics(registry: CollectorRegistry) -> AppMetrics:
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
        rate_limited_total=Counter(
            "hmacfs_rate_limited_total",
            "Requests refused with 429, by the limit that refused them",
            ["limit"],
            registry=registry,
        ),
        **_network_metrics(registry),
    )


def _network_metrics(registry: CollectorRegistry) -> dict[str, Counter]:
    """Chunk takeovers, clients switching networks mid-upload, the node's interface changes
    (the seed's "interface switches"; see docs/handoff.md)."""
    return {
        "upload_takeovers_total": Counter(
            "hmacfs_upload_takeovers_total",
            "Chunks taken over from a writer that went silent (a client that switched networks)",
            ["protocol"],
            registry=registry,
        ),
        "upload_network_changes_total": Counter(
            "hmacfs_upload_network_changes_total",
            "Chunks of an upload arriving from a new client address or network class",
            ["protocol", "from_network", "to_network"],
            registry=registry,
        ),
        "network_interface_changes_total": Counter(
            "hmacfs_network_interface_changes_total",
            "Changes of this node's network interfaces seen by the interface monitor",
            ["kind"],
            registry=registry,
        ),
    }


@dataclass(frozen=True)
class WorkerMetrics:
    """What ``hmacfs worker`` shows of its scaling (served on ``[workers] metrics_bind``)."""

    slots: Gauge
    queue_depth: Gauge
    scaled_slots_total: Counter


def worker_metrics(registry: CollectorRegistry) -> WorkerMetrics:
    return WorkerMetrics(
        slots=Gauge("hmacfs_worker_slots", "Task processes this worker runs", registry=registry),
        queue_depth=Gauge(
            "hmacfs_task_queue_depth", "Claimable pending tasks at the last measurement", registry=registry
        ),
        scaled_slots_total=Counter(
            "hmacfs_worker_scaled_slots_total",
            "Task processes added (up) or retired (down) by scaling",
            ["direction"],
            registry=registry,
        ),
    )
