"""Work keyed by an id, run in the background: at most one run per key at a time."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

log = logging.getLogger(__name__)


class KeyedRunner:
    """Runs ``work(key)`` on greenlets from ``spawn`` (``gevent.spawn`` in a web worker).

    A request for a key that is running makes that run go once more when it
    ends, instead of starting a second one; ``work`` returns True when there
    may be more to do at once. At most ``limit`` keys run at a time (each may
    hold a pooled database connection); requests beyond that, and all
    requests until ``start`` is called, are ignored: the work must be
    optional, the caller's fallback doing it later.
    """

    def __init__(self, name: str, limit: int = 4) -> None:
        self.name = name
        self.limit = limit
        self._spawn: Callable[..., Any] | None = None
        self._work: Callable[[Any], bool] | None = None
        self._running: set[Hashable] = set()
        self._again: set[Hashable] = set()

    def start(self, spawn: Callable[..., Any], work: Callable[[Any], bool]) -> None:
        self._spawn, self._work = spawn, work

    def request(self, key: Hashable) -> None:
        if self._spawn is None:
            return
        if key in self._running:
            self._again.add(key)
            return
        if len(self._running) >= self.limit:
            return
        self._running.add(key)
        self._spawn(self._run, key)

    def _run(self, key: Hashable) -> None:
        assert self._work is not None
        try:
            while True:
                self._again.discard(key)
                if not self._work(key) and key not in self._again:
                    return
        except Exception:  # the next request, or the caller's fallback, does it
            log.exception("%s of %s failed", self.name, key)
        finally:
            self._running.discard(key)
            self._again.discard(key)
