"""``hmacfs doctor``: is this node ready to serve? One verdict per line, nothing repaired.

Checks, in order: the database answers; its schema is at the migrations' head;
the storage root (and each pool's own storage path) is writable with enough
free space; this machine's clock agrees with PostgreSQL's (expiry, leases and
signed URLs compare the two); the blob store holds the newest blobs the
database names; with ``[rate_limit] storage = "redis"``, Redis answers. A check
that needs the database is skipped when it is down.
The configuration itself is checked by the command before any of these.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
from sqlalchemy import Engine, create_engine, make_url, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from hmacfs.config import Settings
from hmacfs.container import build_store
from hmacfs.db import make_engine
from hmacfs.files import blob_store, pool_stores
from hmacfs.migrate import current_revision, head_revision
from hmacfs.models import Blob
from hmacfs.storage import BlobStore, PathBacked, StoreUnavailable

CONNECT_TIMEOUT = 5  # seconds before an unreachable PostgreSQL counts as down
BLOBS_SAMPLED = 3


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "FAIL" or "skip"
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "FAIL"

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"


@dataclass(frozen=True)
class Limits:
    min_free_bytes: int
    max_clock_skew: float  # seconds


def doctor_engine(settings: Settings) -> Engine:
    """An engine that gives up on an unreachable server after CONNECT_TIMEOUT and keeps no pool."""
    url = settings.database_url
    if make_url(url).get_backend_name() == "postgresql":
        return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT})
    return make_engine(url)


def run_checks(
    settings: Settings, engine: Engine, limits: Limits, now: Callable[[], datetime] | None = None
) -> Iterator[Check]:
    """Every check's verdict, in order; ``now`` is this machine's clock (tests move it)."""
    store = build_store(settings)
    database = check_database(engine, settings)
    yield database
    reachable = not database.failed
    yield check_migrations(engine) if reachable else _skipped("migrations")
    yield check_storage("storage", store, limits.min_free_bytes)
    if reachable:
        with Session(engine) as session:
            pools = pool_stores(session, store)
        for pool_store in pools:
            yield check_storage(f"storage {pool_store.location}", pool_store, limits.min_free_bytes)
    yield check_clock(engine, limits.max_clock_skew, now or _utcnow) if reachable else _skipped("clock")
    yield check_blob_store(engine, store) if reachable else _skipped("blob store")
    if settings.rate_limit.enabled and settings.rate_limit.storage == "redis":
        yield check_rate_limit_redis(settings.rate_limit.storage_uri)


def format_size(size: int) -> str:
    """``size`` bytes for people: "512 B", "3.2 MiB", "1.5 TiB"."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


def _skipped(name: str) -> Check:
    return Check(name, "skip", "not checked: the database is unreachable")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_database(engine: Engine, settings: Settings) -> Check:
    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return Check("database", "FAIL", f"{shown}: no such file (run `hmacfs db upgrade`)")
    started = time.perf_counter()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "unreachable"; say which
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check("database", "FAIL", f"{shown} unreachable: {reason[:200]}")
    return Check("database", "ok", f"{shown} answers in {(time.perf_counter() - started) * 1000:.1f} ms")


def check_migrations(engine: Engine) -> Check:
    current, head = current_revision(engine), head_revision()
    if current == head:
        return Check("migrations", "ok", f"at head ({head})")
    return Check(
        "migrations", "FAIL", f"at {current or 'base (empty)'}, head is {head}: run `hmacfs db upgrade`"
    )


def check_storage(name: str, store: BlobStore, min_free: int) -> Check:
    where = store.location
    try:
        store.check_writable()
        space = store.space()
    except (OSError, StoreUnavailable) as exc:
        return Check(name, "FAIL", f"{where} not writable: {_reason(exc)}")
    if space is None:
        return Check(name, "ok", f"{where} writable (no free-space limit)")
    free = space.free
    if free < min_free:
        return Check(name, "FAIL", f"{where}: only {format_size(free)} free (want {format_size(min_free)})")
    return Check(name, "ok", f"{where} writable, {format_size(free)} free")


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or type(exc).__name__


def check_clock(engine: Engine, max_skew: float, now: Callable[[], datetime]) -> Check:
    """This machine's clock against PostgreSQL's ``clock_timestamp()``, round trip halved."""
    if engine.dialect.name != "postgresql":
        return Check("clock", "skip", "SQLite runs on this machine's clock")
    before = now()
    with engine.connect() as connection:
        theirs: datetime = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
    after = now()
    ours = before + (after - before) / 2
    skew = (ours - theirs).total_seconds()
    detail = f"{abs(skew):.3f} s {'ahead of' if skew > 0 else 'behind'} PostgreSQL"
    if abs(skew) > max_skew:
        return Check("clock", "FAIL", f"{detail} (more than {max_skew:g} s: run NTP on both)")
    return Check("clock", "ok", detail)


def check_blob_store(engine: Engine, store: BlobStore) -> Check:
    """The newest blobs the database names are in the store, at their recorded size."""
    with Session(engine) as session:
        blobs = session.scalars(select(Blob).order_by(Blob.created_at.desc()).limit(BLOBS_SAMPLED)).all()
    if not blobs:
        readable = not isinstance(store, PathBacked) or store.root.is_dir()
        status = "ok" if readable else "FAIL"
        return Check(
            "blob store",
            status,
            f"{store.location}: no blobs yet" + ("" if readable else ", not a directory"),
        )
    for blob in blobs:
        home = blob_store(store, blob.storage_root)
        where = f"{home.location}/{blob.storage_key}"
        try:
            with home.open_blob(blob.storage_key) as stored:
                size = stored.size
        except (OSError, StoreUnavailable) as exc:
            return Check(
                "blob store", "FAIL", f"blob {blob.sha256[:12]} unreadable at {where}: {_reason(exc)}"
            )
        if size != blob.size:
            return Check(
                "blob store", "FAIL", f"blob {blob.sha256[:12]} at {where} is {size} bytes, not {blob.size}"
            )
    return Check("blob store", "ok", f"the {len(blobs)} newest blob(s) are in place")


def check_rate_limit_redis(url: str) -> Check:
    """PING the rate limits' Redis; names its address, never the URL (it may hold a password)."""
    parts = urllib.parse.urlsplit(url)
    shown = parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"
    started = time.perf_counter()
    try:
        redis.Redis.from_url(
            url, socket_timeout=CONNECT_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT
        ).ping()
    except redis.RedisError as exc:
        return Check(
            "rate-limit redis", "FAIL", f"{shown} unreachable ({type(exc).__name__}): requests pass unchecked"
        )
    return Check(
        "rate-limit redis", "ok", f"{shown} answers in {(time.perf_counter() - started) * 1000:.1f} ms"
    )
