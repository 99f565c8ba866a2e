"""Run a blocking system call without stalling the gevent loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
A = TypeVar("A")


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


def concurrently(function: Callable[[A], T], items: Iterable[A], *, limit: int) -> list[T]:
    """``function`` of each of ``items``, up to ``limit`` at a time, the results in order:
    in greenlets when gevent has patched the process (calls that wait on sockets, such
    as an object store's requests), in threads otherwise. The first exception raised is
    raised here once all calls have ended."""
    todo = list(items)
    if len(todo) <= 1 or limit <= 1:
        return [function(item) for item in todo]
    try:
        from gevent import monkey
        from gevent.pool import Pool
    except ImportError:  # pragma: no cover - gevent is a hard dependency
        monkey = None
    if monkey is not None and monkey.is_module_patched("socket"):
        greenlets = Pool(limit)
        started = [greenlets.spawn(function, item) for item in todo]
        greenlets.join()
        return [greenlet.get() for greenlet in started]
    with ThreadPoolExecutor(min(limit, len(todo))) as threads:
        futures = [threads.submit(function, item) for item in todo]
    return [future.result() for future in futures]
