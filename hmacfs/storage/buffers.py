"""Read buffers for request bodies, from one pool per process under a hard memory budget.

Every upload buffer of a worker comes from here: the fixed arm's full-size
pairs and the adaptive arm's pairs and single trickle buffers (see
``hmacfs.storage.copying``). Bytes handed out plus spare buffers kept for
reuse never exceed ``budget``: a body that finds it spent first gets a
smaller buffer (down to ``minimum``) and then waits; after ``wait`` seconds
it is refused with 503 BUFFER_MEMORY_EXHAUSTED (the client retries). Under
gevent the wait is cooperative (``threading`` is patched).
"""

from __future__ import annotations

import threading
import time

from hmacfs.errors import ServiceUnavailable

Pair = tuple[memoryview, memoryview]


class BufferMemoryExhausted(ServiceUnavailable):
    code = "BUFFER_MEMORY_EXHAUSTED"


class BufferPool:
    """Buffers of power-of-two sizes; spare full-size ones kept (``keep`` per size) for reuse.

    A new buffer of 1 MiB costs about 1.4 ms here (bytearray zero-fills it); a
    body only ever uses what it filled itself, so reuse leaks nothing.
    """

    def __init__(self, budget: int, *, minimum: int = 32 * 1024, keep: int = 4, wait: float = 30.0) -> None:
        self.budget, self.minimum, self.keep, self.wait = budget, minimum, keep, wait
        self._spare: dict[int, list[Pair]] = {}
        self._singles: dict[int, list[memoryview]] = {}
        self._in_use = 0
        self._spare_bytes = 0
        self.peak = 0
        self._changed = threading.Condition()

    @property
    def in_use(self) -> int:
        """Bytes handed out and not yet given back."""
        return self._in_use

    @property
    def held(self) -> int:
        """Bytes handed out plus spare: what the pool accounts against its budget."""
        return self._in_use + self._spare_bytes

    def take(self, buffer_size: int, *, needed: int) -> Pair:
        """A pair of buffers: a spare full-size pair, else a new pair of at most ``needed``
        bytes each (smaller when the budget is short). Raises BufferMemoryExhausted."""
        with self._changed:
            spare = self._spare.get(buffer_size)
            if spare:
                pair = spare.pop()
                self._spare_bytes -= 2 * len(pair[0])
                self._hand_out(2 * len(pair[0]))
                return pair
            size = self._reserve(min(buffer_size, needed) or 1, count=2)
        return memoryview(bytearray(size)), memoryview(bytearray(size))

    def give_back(self, pair: Pair, buffer_size: int) -> None:
        """Return a pair from ``take``; full-size pairs are kept while fewer than ``keep``."""
        size = len(pair[0])
        with self._changed:
            self._in_use -= 2 * size
            spare = self._spare.setdefault(buffer_size, [])
            if size == buffer_size and len(spare) < self.keep and self.held + 2 * size <= self.budget:
                spare.append(pair)
                self._spare_bytes += 2 * size
            self._changed.notify_all()

    def take_one(self, size: int) -> memoryview:
        """One buffer of ``size`` bytes (or smaller under a short budget)."""
        with self._changed:
            singles = self._singles.get(size)
            if singles:
                view = singles.pop()
                self._spare_bytes -= len(view)
                self._hand_out(len(view))
                return view
            got = self._reserve(size, count=1)
        return memoryview(bytearray(got))

    def give_back_one(self, view: memoryview) -> None:
        with self._changed:
            self._in_use -= len(view)
            singles = self._singles.setdefault(len(view), [])
            if len(singles) < self.keep and self.held + len(view) <= self.budget:
                singles.append(view)
                self._spare_bytes += len(view)
            self._changed.notify_all()

    def _reserve(self, size: int, *, count: int) -> int:
        """Account ``count`` buffers of ``size`` (halved while they do not fit, down to
        ``minimum``), dropping spares and then waiting for the budget. Lock held."""
        deadline = time.monotonic() + self.wait
        while True:
            self._drop_spares_for(size * count)
            fitting = size
            while fitting * count + self.held > self.budget and fitting // 2 >= self.minimum:
                fitting //= 2
            if fitting * count + self.held <= self.budget:
                self._hand_out(fitting * count)
                return fitting
            left = deadline - time.monotonic()
            if left <= 0:
                raise BufferMemoryExhausted(
                    "no read buffer free within the memory budget; retry shortly",
                    details={"budget": self.budget},
                )
            self._changed.wait(min(left, 1.0))

    def _drop_spares_for(self, wanted: int) -> None:
        for store in (self._spare, self._singles):
            for kept in store.values():
                while kept and self.held + wanted > self.budget:
                    item = kept.pop()
                    self._spare_bytes -= 2 * len(item[0]) if isinstance(item, tuple) else len(item)

    def _hand_out(self, size: int) -> None:
        self._in_use += size
        self.peak = max(self.peak, self._in_use)
