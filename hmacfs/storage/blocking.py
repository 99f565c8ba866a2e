"""Run a blocking system call without stalling the gevent loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

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


class Pending(Protocol):
    def get(self) -> Any:
        """Wait for the call to finish; return its result or raise its exception."""


class _Done:
    def __init__(self, function: Callable[..., object], args: tuple[object, ...]) -> None:
        self._result = function(*args)

    def get(self) -> Any:
        return self._result


def start_blocking(function: Callable[..., object], *args: object) -> Pending:
    """Start ``function`` in gevent's thread pool and return at once (run it now
    when gevent is not in use). The caller must ``get()`` the result before
    touching anything the call uses."""
    try:
        from gevent import get_hub, monkey
    except ImportError:  # pragma: no cover - gevent is a hard dependency
        return _Done(function, args)
    if not monkey.is_module_patched("socket"):
        return _Done(function, args)
    pending: Pending = get_hub().threadpool.spawn(function, *args)
    return pending
