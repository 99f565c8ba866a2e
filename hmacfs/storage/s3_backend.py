"""Building the S3 store from settings (``hmacfs.container.build_store`` calls this)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from sqlalchemy import Engine, create_engine

from hmacfs.s3_settings import S3Settings
from hmacfs.storage.s3 import LockFactory, S3BlobStore
from hmacfs.storage.s3_blob_cache import BlobCache
from hmacfs.storage.s3_client import build_client
from hmacfs.storage.s3_slot_copies import COPIES_DIRECTORY, SlotCopies
from hmacfs.storage.shared_range_lock import AdvisoryRangeLock, AdvisorySession, MemoryRangeLocks


def build_s3_store(
    settings: S3Settings, engine: Engine | None, *, buffer_size: int, local_root: Path | None = None
) -> S3BlobStore:
    """The S3 store of ``settings``: range locks in PostgreSQL when ``engine`` is one (every
    node shares them; one connection of their own per process), else in this process;
    copies of the slots this node stores under ``local_root`` (``s3_slot_copies``) when
    given and ``slot_copies`` allows; small blobs kept for downloads in each process's memory
    (``s3_blob_cache``) unless ``small_blob_cache`` is 0. ValueError when no credentials can
    be found."""
    client = build_client(settings)
    locks: LockFactory
    if engine is not None and engine.dialect.name == "postgresql":
        lock_engine = create_engine(engine.url, pool_size=1, max_overflow=0, pool_pre_ping=True)
        locks = partial(AdvisoryRangeLock, AdvisorySession(lock_engine), MemoryRangeLocks())
    else:
        locks = MemoryRangeLocks().lock
    slots = None
    if local_root is not None and settings.slot_copies > 0:
        slots = SlotCopies(local_root / COPIES_DIRECTORY, settings.slot_copies)
    cache = BlobCache(settings.small_blob_cache) if settings.small_blob_cache > 0 else None
    return S3BlobStore(client, settings, locks=locks, buffer_size=buffer_size, slots=slots, cache=cache)
