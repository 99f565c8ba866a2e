"""Request bodies the fault tests share."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.e2e.test_resumable import CHUNK


def drive_create(payload: bytes, name: str = "a.bin") -> dict[str, Any]:
    """The Drive create body of ``payload`` in CHUNK-sized chunks, its SHA-256 declared."""
    return {
        "fileName": name,
        "fileSize": len(payload),
        "chunkSize": CHUNK,
        "contentType": "application/octet-stream",
        "hash": hashlib.sha256(payload).hexdigest(),
    }
