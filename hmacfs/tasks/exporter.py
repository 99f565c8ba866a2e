"""``hmacfs worker``'s ``/metrics`` on ``[workers] metrics_bind``: every process of the worker.

Task metrics (``hmacfs_tasks_total``, ``hmacfs_task_duration_seconds``, the slots'
database pools) are counted in the slot processes, the scaling metrics in the
supervisor. The command points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory of
its own before prometheus_client is first imported (``hmacfs.serving.worker_metrics_dir``),
so every process it forks writes its values to files there, and the supervisor
serves them added up (prometheus_client's multiprocess collector), as gunicorn's
workers are by ``/metrics``. A slot that exits or is killed keeps its counts (its
counter files stay); only its live gauges are dropped (``forget_process``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead


def serve_metrics(bind: str, directory: str) -> int:
    """Serve the processes' metrics in ``directory`` on ``bind`` (host:port) from a thread;
    returns the listening socket's descriptor, which forked slots close.

    Raises RuntimeError when prometheus_client was imported before the directory was
    set (each process would then count in memory, and nothing would be served), and
    OSError when ``bind`` is taken.
    """
    if not getattr(values.ValueClass, "_multiprocess", False):
        raise RuntimeError("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    host, _, port = bind.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    return server.socket.fileno()


def forget_process(pid: int | None, directory: str | None) -> None:
    """Drop the live gauges of the exited process ``pid`` (its counters stay in the totals)."""
    if pid is not None and directory:
        mark_process_dead(pid, path=directory)  # type: ignore[no-untyped-call]
