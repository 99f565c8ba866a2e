"""A digest a client declared for one request body, checked by the engine as the bytes arrive."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class ExpectedDigest:
    """A digest the client declared for one request body (decoded from a protocol header)."""

    algorithm: str  # hashlib name
    digest: bytes
    header: str  # where it came from, for error messages

    def new_hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)
