"""SHA-256 of an upload's contiguous prefix, computed while the bytes arrive in order.

A tus upload is written front to back, one PATCH after another. The process
that receives a PATCH feeds its bytes to a running SHA-256 as well as to the
range's own digest, so the upload's last PATCH can complete it without reading
the whole part again. The state lives only in this process's memory: a PATCH
handled elsewhere, a restart or an eviction simply leaves completion to the
full pass. A state is trusted only if the digests of the ranges it hashed equal
the digests the database recorded for them, in order, so a PATCH that was
written but rolled back (and re-sent with other bytes) can never leave a wrong
result behind.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any


class PrefixHash:
    """Bytes [0, position) hashed (``content``), and the digests of the ranges they came in."""

    __slots__ = ("content", "position", "ranges")

    def __init__(self) -> None:
        self.position = 0
        self.content: Any = hashlib.sha256()
        self.ranges: Any = hashlib.sha256()

    def advance(self, length: int, range_sha256: str) -> None:
        """Record that ``length`` more bytes, with this digest, were fed to ``content``."""
        self.position += length
        self.ranges.update(bytes.fromhex(range_sha256))


class PrefixHashes:
    """This process's prefix states, at most ``limit`` (the least recently used go first).

    Methods never yield to other greenlets, so no lock is needed.
    """

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._states: OrderedDict[Hashable, PrefixHash] = OrderedDict()

    def take(self, key: Hashable, offset: int) -> PrefixHash | None:
        """The state to continue at ``offset`` (a fresh one at 0), removed while in use; None
        when this process did not hash the bytes before ``offset``."""
        state = self._states.pop(key, None)
        if offset == 0:
            return PrefixHash()
        return state if state is not None and state.position == offset else None

    def keep(self, key: Hashable, state: PrefixHash) -> None:
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > self._limit:
            self._states.popitem(last=False)

    def digest(self, key: Hashable, size: int, recorded: Iterable[str]) -> str | None:
        """The SHA-256 of bytes [0, size) if this process hashed exactly them as the ranges
        ``recorded`` (the committed range digests, in offset order); None otherwise."""
        state = self._states.pop(key, None)
        if state is None or state.position != size:
            return None
        chain = hashlib.sha256()
        for sha256 in recorded:
            chain.update(bytes.fromhex(sha256))
        if not hmac.compare_digest(chain.digest(), state.ranges.digest()):
            return None
        digest: str = state.content.hexdigest()
        return digest
