"""The process-wide dependencies, built from settings in one place."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine

from hmacfs.background import KeyedRunner
from hmacfs.config import ConfigError, Settings
from hmacfs.db import Database, create_database
from hmacfs.events.hub import Hub
from hmacfs.metrics import AppMetrics
from hmacfs.ports import Clock, Locker, MemoryLocker, PgAdvisoryLocker, SystemClock, TaskTypes
from hmacfs.sealing import Sealer
from hmacfs.storage import BlobStore, LocalBlobStore
from hmacfs.storage.buffers import BufferPool
from hmacfs.tokens import TokenCodec
from hmacfs.xep0363.slot_cache import SlotCache


@dataclass(frozen=True)
class Services:
    """Everything a request handler may reach, built once per process."""

    settings: Settings
    db: Database
    store: BlobStore
    locker: Locker
    tokens: TokenCodec
    clock: Clock
    sealer: Sealer
    # The task handlers submitting checks against (built by hmacfs.composition).
    task_types: TaskTypes
    metrics: AppMetrics | None = None
    # The process's body buffers under performance.max_buffer_memory (None: copying's default pool).
    buffers: BufferPool | None = None
    # This process's live-event subscribers; the event bus feeds it (hmacfs.events.delivery).
    hub: Hub = field(default_factory=Hub)
    # Advances Drive/chunked uploads' running hashes after commits (hmacfs.uploads.running_hash).
    hash_advancer: KeyedRunner = field(default_factory=lambda: KeyedRunner("advancing the running hash"))
    # What slot GETs need, by path; cached only while the event bus feeds it notices.
    slot_cache: SlotCache[Any] = field(default_factory=lambda: SlotCache(0))


def build_services(
    settings: Settings, *, task_types: TaskTypes, pre_ping: bool = True, **overrides: Any
) -> Services:
    """Build the dependencies from settings; ``overrides`` replace any of them (tests).

    Callers use ``hmacfs.composition.build_services``, which supplies the explicit lists
    (task handlers). ``pre_ping``: see ``hmacfs.db.create_database``.
    """
    db = overrides.pop("db", None) or create_database(
        settings.database_url,
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.max_overflow,
        echo=settings.database.echo,
        pre_ping=pre_ping,
    )
    buffers = BufferPool(
        settings.performance.max_buffer_memory,
        minimum=settings.performance.min_buffer_size,
        wait=settings.timeouts.body_idle.total_seconds(),
    )
    services = Services(
        settings=settings,
        db=db,
        store=build_store(settings, offload_promotion=db.is_postgresql, buffers=buffers, engine=db.engine),
        buffers=buffers,
        locker=PgAdvisoryLocker(db.engine) if db.is_postgresql else MemoryLocker(),
        tokens=TokenCodec.from_settings(settings.security),
        clock=SystemClock(),
        sealer=Sealer(settings.security.secret),
        task_types=task_types,
        slot_cache=SlotCache(settings.xep0363.get_cache_entries),
    )
    return replace(services, **overrides)


def build_store(
    settings: Settings,
    *,
    offload_promotion: bool = False,
    buffers: BufferPool | None = None,
    engine: Engine | None = None,
) -> BlobStore:
    """The blob store ``[storage]`` configures: the one place a backend is chosen.

    ``offload_promotion``: promotions may let other greenlets run (PostgreSQL only;
    see ``LocalBlobStore``); ``buffers``: the process's body buffers; ``engine``: the
    database, where an object store keeps its range locks (PostgreSQL: shared by every
    node; otherwise, or without one, in this process). ConfigError when the S3 store
    finds no credentials.

    Each backend reaches the other's roots (``at``: an absolute path, an ``s3://`` root)
    when both are configured: StorageMigration moves blobs between them.
    """
    local = LocalBlobStore(
        settings.storage.path,
        fsync=settings.storage.fsync,
        buffer_size=settings.performance.max_buffer_size,
        offload_promotion=offload_promotion,
        buffers=buffers,
    )
    if settings.storage.backend == "local" and not settings.storage.s3.bucket:
        return local
    from hmacfs.storage.s3_backend import build_s3_store  # boto3 only where it is used

    try:
        s3 = build_s3_store(
            settings.storage.s3, engine,
            buffer_size=settings.performance.max_buffer_size, local_root=settings.storage.path,
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError([f"storage.s3: {exc}"]) from None
    s3.foreign, local.foreign = local.at, s3.at
    return s3 if settings.storage.backend == "s3" else local
