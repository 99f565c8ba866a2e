"""The domain metrics, declared here with fixed label sets (request metrics and
``GET /metrics`` are wired in ``hmacfs.web.metrics``).

Under gunicorn (``metrics.multiprocess_dir`` set) every worker writes to the
shared directory and ``/metrics`` aggregates them, so counters add up.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine, event

_BYTE_BUCKETS = tuple(float(1024**2 * n) for n in (0.0625, 1, 5, 16, 64, 256, 1024, 4096))


_DURATION_BUCKETS = (0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
UPLOAD_OUTCOMES = ("failed", "cancelled", "expired")


@dataclass(frozen=True)
class AppMetrics:
    """The domain metrics. Services publish them (``hmacfs.uploads.counting``,
    ``hmacfs.tasks.queue``, ``hmacfs.events``); handlers never touch them.

    Upload counters move when the transaction that records the change commits, so a
    rolled-back request counts nothing; bytes count as they are stored.
    """

    uploads_started_total: Counter  # protocol
    uploads_total: Counter  # protocol: completed uploads
    uploads_failed_total: Counter  # protocol, outcome (failed, cancelled, expired)
    upload_bytes_total: Counter  # protocol: bytes received and stored
    upload_errors_total: Counter  # protocol, code: rejected XEP-0363 PUTs
    download_bytes_total: Counter
    upload_size_bytes: Histogram  # protocol
    upload_duration_seconds: Histogram  # protocol: created to completed
    tasks_total: Counter  # type, status (Completed, Failed, Cancelled)
    task_duration_seconds: Histogram  # type: started to finished
    events_delivered_total: Counter  # to WebSocket subscribers of this process
    events_dropped_total: Counter  # queued for a subscriber that fell behind (it resyncs)
    websocket_subscribers: Gauge
    db_pool_checked_out: Gauge
    db_pool_capacity: Gauge
    rate_limited_total: Counter
    rate_limit_unchecked_total: Counter  # passed because the Redis buckets were unreachable
    # The network half (issue 14 parts 6 and 7): takeovers, client switches, interface changes.
    upload_takeovers_total: Counter
    upload_network_changes_total: Counter
    network_interface_changes_total: Counter
    # Sampled before each scrape (hmacfs.web.metrics.sample_state_on_scrape).
    storage_free_bytes: Gauge
    storage_size_bytes: Gauge
    tasks_pending: Gauge
    uploads_stale: Gauge
    # Quotas (issue 17 part 7): refusals by code (QUOTA_EXCEEDED, RESERVATION_LIMIT, ...).
    quota_refusals_total: Counter
    # The adaptive engine (issue 14 parts 1-5 and 8): see NetworkMetrics below.
    network: NetworkMetrics


def _sampled(name: str, text: str, registry: CollectorRegistry) -> Gauge:
    """A gauge set at scrape time: the most recent value of any live worker."""
    return Gauge(name, text, registry=registry, multiprocess_mode="livemostrecent")


def domain_metrics(registry: CollectorRegistry) -> AppMetrics:
    """Declare every domain metric in ``registry`` (fixed label sets)."""
    return AppMetrics(
        network=network_metrics(registry),
        uploads_started_total=Counter(
            "hmacfs_uploads_started_total", "Uploads started", ["protocol"], registry=registry
        ),
        uploads_total=Counter("hmacfs_uploads_total", "Completed uploads", ["protocol"], registry=registry),
        uploads_failed_total=Counter(
            "hmacfs_uploads_failed_total",
            "Uploads that ended without a file",
            ["protocol", "outcome"],
            registry=registry,
        ),
        upload_bytes_total=Counter(
            "hmacfs_upload_bytes_total", "Bytes received and stored", ["protocol"], registry=registry
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
        upload_duration_seconds=Histogram(
            "hmacfs_upload_duration_seconds",
            "Time from an upload's creation to its completion",
            ["protocol"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        ),
        tasks_total=Counter(
            "hmacfs_tasks_total", "Background tasks finished", ["type", "status"], registry=registry
        ),
        task_duration_seconds=Histogram(
            "hmacfs_task_duration_seconds",
            "Time from a task's start to its end",
            ["type"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        ),
        events_delivered_total=Counter(
            "hmacfs_events_delivered_total", "Events queued for WebSocket subscribers", registry=registry
        ),
        events_dropped_total=Counter(
            "hmacfs_events_dropped_total",
            "Events dropped for a subscriber that fell behind (told to resync)",
            registry=registry,
        ),
        websocket_subscribers=Gauge(
            "hmacfs_websocket_subscribers",
            "Open /ws event streams",
            registry=registry,
            multiprocess_mode="livesum",
        ),
        db_pool_checked_out=Gauge(
            "hmacfs_db_pool_checked_out",
            "Database connections in use",
            registry=registry,
            multiprocess_mode="livesum",
        ),
        db_pool_capacity=Gauge(
            "hmacfs_db_pool_capacity",
            "Database connections the pools may open (pool_size + max_overflow)",
            registry=registry,
            multiprocess_mode="livesum",
        ),
        rate_limited_total=Counter(
            "hmacfs_rate_limited_total",
            "Requests refused with 429, by the limit that refused them",
            ["limit"],
            registry=registry,
        ),
        rate_limit_unchecked_total=Counter(
            "hmacfs_rate_limit_unchecked_total",
            "Requests let through unchecked because the rate-limit storage (Redis) was unreachable",
            registry=registry,
        ),
        **_network_metrics(registry),
        storage_free_bytes=_sampled("hmacfs_storage_free_bytes", "Free storage bytes", registry),
        storage_size_bytes=_sampled("hmacfs_storage_size_bytes", "Size of the storage", registry),
        tasks_pending=_sampled("hmacfs_tasks_pending", "Pending background tasks", registry),
        uploads_stale=_sampled("hmacfs_uploads_stale", "Open uploads idle for over an hour", registry),
        quota_refusals_total=Counter(
            "hmacfs_quota_refusals_total",
            "Uploads refused by a quota or the reservation bound, by code",
            ["code"],
            registry=registry,
        ),
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
    """What ``hmacfs worker`` shows of its scaling (served on ``[workers] metrics_bind`` with its
    slots' task metrics, ``hmacfs.tasks.exporter``)."""

    slots: Gauge
    queue_depth: Gauge
    scaled_slots_total: Counter


def worker_metrics(registry: CollectorRegistry) -> WorkerMetrics:
    """The supervisor's metrics. Only it sets them; a slot it forks may write their initial 0
    (no timestamp) to its own file, so the most recent value is the supervisor's."""
    return WorkerMetrics(
        slots=_sampled("hmacfs_worker_slots", "Task processes this worker runs", registry),
        queue_depth=_sampled(
            "hmacfs_task_queue_depth", "Claimable pending tasks at the last measurement", registry
        ),
        scaled_slots_total=Counter(
            "hmacfs_worker_scaled_slots_total",
            "Task processes added (up) or retired (down) by scaling",
            ["direction"],
            registry=registry,
        ),
    )


def watch_pool(engine: Engine, metrics: AppMetrics, capacity: int) -> None:
    """Keep ``hmacfs_db_pool_checked_out`` and ``hmacfs_db_pool_capacity`` for ``engine``'s pool
    (``capacity``: pool_size + max_overflow). Summed over live processes, their ratio is
    the pool saturation of the node."""
    metrics.db_pool_capacity.inc(capacity)
    event.listen(engine, "checkout", lambda *_args: metrics.db_pool_checked_out.inc())
    event.listen(engine, "checkin", lambda *_args: metrics.db_pool_checked_out.dec())


# -- The adaptive engine (docs/adaptive.md maps each to the dual-stack seed's name) ------------

_RATE_BUCKETS = tuple(float(n) for n in (16e3, 64e3, 256e3, 1e6, 4e6, 16e6, 64e6, 256e6, 1e9))
_SECOND_BUCKETS = (0.01, 0.05, 0.25, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_CHUNK_BUCKETS = tuple(float(1024 * n) for n in (256, 512, 1024, 2048, 4096, 8192, 16384))
_CLASS = ["network_class"]


@dataclass(frozen=True)
class NetworkMetrics:
    """Per-connection measurements, the sizes chosen from them and the A/B arms."""

    upload_throughput: Histogram  # arm
    download_throughput: Histogram
    chunk_size: Histogram  # arm: recommended on create
    upload_latency: Histogram  # arm, outcome: seconds per body
    bodies_total: Counter  # arm, outcome
    range_requests_total: Counter
    buffer_bytes_in_use: Gauge
    buffer_size: Gauge  # the read size last chosen
    buffer_size_changes_total: Counter
    network_speed: Gauge  # network_class
    network_latency: Gauge  # network_class
    network_reliability: Gauge  # network_class
    fallbacks_total: Counter
    fallback_active: Gauge


def network_metrics(registry: CollectorRegistry) -> NetworkMetrics:
    def gauge(name: str, text: str, labels: list[str] | None = None, mode: str = "mostrecent") -> Gauge:
        return Gauge(name, text, labels or [], registry=registry, multiprocess_mode=mode)  # type: ignore[arg-type]

    return NetworkMetrics(
        upload_throughput=Histogram(
            "hmacfs_upload_throughput_bytes_per_second", "Goodput of each upload body", ["arm"],
            buckets=_RATE_BUCKETS, registry=registry,
        ),
        download_throughput=Histogram(
            "hmacfs_download_throughput_bytes_per_second", "Rate of each download segment sent",
            buckets=_RATE_BUCKETS, registry=registry,
        ),
        chunk_size=Histogram(
            "hmacfs_chunk_size_bytes", "Chunk size recommended on create", ["arm"],
            buckets=_CHUNK_BUCKETS, registry=registry,
        ),
        upload_latency=Histogram(
            "hmacfs_upload_body_seconds", "Seconds from the first to the last byte of an upload body",
            ["arm", "outcome"], buckets=_SECOND_BUCKETS, registry=registry,
        ),
        bodies_total=Counter(
            "hmacfs_upload_bodies_total", "Upload bodies by A/B arm and outcome (complete, short, timed_out)",
            ["arm", "outcome"], registry=registry,
        ),
        range_requests_total=Counter(
            "hmacfs_range_requests_total", "Downloads answered 206 (one or more ranges)", registry=registry
        ),
        buffer_bytes_in_use=gauge(
            "hmacfs_buffer_bytes_in_use", "Body read buffers handed out, bytes (per worker, summed)",
            mode="livesum",
        ),
        buffer_size=gauge("hmacfs_buffer_size_bytes", "Read size last chosen for an upload body"),
        buffer_size_changes_total=Counter(
            "hmacfs_buffer_size_changes_total", "Read-size changes during upload bodies", registry=registry
        ),
        network_speed=gauge(
            "hmacfs_network_speed_bytes_per_second", "Last profile throughput estimate per class", _CLASS
        ),
        network_latency=gauge("hmacfs_network_latency_ms", "Last profile RTT estimate per class", _CLASS),
        network_reliability=gauge(
            "hmacfs_network_reliability", "Last profile reliability (completed/attempted) per class", _CLASS
        ),
        fallbacks_total=Counter(
            "hmacfs_adaptive_fallbacks_total", "Times the adaptive arm was switched off for failing more",
            registry=registry,
        ),
        fallback_active=gauge(
            "hmacfs_adaptive_fallback_active", "1 while a worker sends every upload to the fixed arm",
            mode="livemax",
        ),
    )  # fmt: skip
