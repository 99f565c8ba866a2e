"""Resume state on disk: one small JSON file per (server, protocol, file fingerprint).

Running the same ``hmacfs upload`` again finds the file's state and continues
the upload the server already holds. The fingerprint is cheap (size,
modification time and the first and last 64 KiB), so finding the state does not
read a large file; the whole-file SHA-256, when an upload needed it, is kept in
the state so a rerun need not hash again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_SAMPLE = 64 * 1024


@dataclass(frozen=True)
class LocalFile:
    """A file to upload, as found on disk."""

    path: Path
    size: int
    fingerprint: str

    @classmethod
    def open(cls, path: Path) -> LocalFile:
        """Stat and sample ``path``; raises OSError when it cannot be read."""
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            sampler = hashlib.sha256(f"{info.st_size}:{info.st_mtime_ns}".encode())
            sampler.update(handle.read(_SAMPLE))
            if info.st_size > _SAMPLE:
                handle.seek(max(_SAMPLE, info.st_size - _SAMPLE))
                sampler.update(handle.read(_SAMPLE))
        return cls(path, info.st_size, sampler.hexdigest())


@dataclass
class UploadState:
    """What a rerun needs to continue: where the upload lives on the server."""

    server: str
    protocol: str
    fingerprint: str
    size: int
    path: str
    location: str = ""  # tus upload URL, Drive task id or chunked session id
    chunk_size: int = 0
    sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class StateStore:
    """State files under ``directory`` (created on first write), written atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, server: str, protocol: str, fingerprint: str) -> Path:
        key = hashlib.sha256(f"{server.rstrip('/')}\n{protocol}\n{fingerprint}".encode()).hexdigest()
        return self.directory / f"{key[:32]}.json"

    def load(self, server: str, protocol: str, file: LocalFile) -> UploadState | None:
        """The saved state for this file on this server, or None (also for a damaged file)."""
        path = self._path(server, protocol, file.fingerprint)
        try:
            raw = json.loads(path.read_text())
            state = UploadState(**raw)
        except (OSError, ValueError, TypeError):
            return None
        return state if state.fingerprint == file.fingerprint and state.size == file.size else None

    def save(self, state: UploadState) -> None:
        path = self._path(state.server, state.protocol, state.fingerprint)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(asdict(state)))
        os.replace(temporary, path)

    def drop(self, state: UploadState) -> None:
        self._path(state.server, state.protocol, state.fingerprint).unlink(missing_ok=True)


def default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "hmacfs" / "uploads"
