"""Run a blocking system call without stalling the gevent loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def offload(function: Callable[..., T], *args: object) -> T:
    """Call ``function`` in gevent's thread pool when gevent has patched the
    process (gunicorn gevent workers), so a long fsync does not freeze every
    other request of the worker; call it directly otherwise."""
    try:
        from gevent import get_hub, monkey
    except ImportError:  # pragma: no cover - gevent is a hard dependency
        return function(*args)
    if not monkey.is_module_patched("socket"):
        return function(*args)
    result: T = get_hub().threadpool.apply(function, args)
    return result
