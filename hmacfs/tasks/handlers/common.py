"""Helpers shared by the built-in handlers: parameter checks, owned files, part writing."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hmacfs.files import NewFile, blob_store, create_file_from_part, same_root
from hmacfs.models import Blob, Bundle, File, Pool
from hmacfs.storage import BlobStore
from hmacfs.storage.copying import blocks_reader
from hmacfs.storage.streams import open_blob_file
from hmacfs.storage.transfer import move_part
from hmacfs.tasks.context import TaskContext, TaskError

MAX_IDS = 10_000
BLOCK = 1024 * 1024  # a task's output goes to the store in blocks of this size


# -- parameter validation (raise ValueError("field: problem") -> 400) -----------------
def uuid_param(parameters: dict[str, Any], field: str, *, required: bool = True) -> uuid.UUID | None:
    value = parameters.get(field)
    if value is None:
        if required:
            raise ValueError(f"{field}: required")
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError(f"{field}: not a valid id") from None


def id_list_param(parameters: dict[str, Any], field: str) -> list[uuid.UUID]:
    value = parameters.get(field)
    if not isinstance(value, list) or not value:
        raise ValueError(f"{field}: required non-empty list of file ids")
    if len(value) > MAX_IDS:
        raise ValueError(f"{field}: at most {MAX_IDS} ids")
    try:
        return [uuid.UUID(str(item)) for item in value]
    except ValueError:
        raise ValueError(f"{field}: not a list of valid ids") from None


def check_owned_files(session: Session, account_id: uuid.UUID, field: str, ids: list[uuid.UUID]) -> None:
    """Every id names a file of the account (another account's file reads as missing)."""
    wanted = set(ids)
    found = session.scalar(select(func.count()).where(File.id.in_(wanted), File.account_id == account_id))
    if found != len(wanted):
        raise ValueError(f"{field}: file not found")


def check_bundle(session: Session, account_id: uuid.UUID, field: str, bundle_id: uuid.UUID | None) -> None:
    if bundle_id is None:
        return
    bundle = session.get(Bundle, bundle_id)
    if bundle is None or bundle.account_id != account_id:
        raise ValueError(f"{field}: bundle not found")


def check_pool(session: Session, field: str, pool_id: uuid.UUID | None) -> None:
    if pool_id is not None and session.get(Pool, pool_id) is None:
        raise ValueError(f"{field}: pool not found")


def choice_param(parameters: dict[str, Any], field: str, choices: tuple[str, ...], default: str) -> str:
    value = parameters.get(field, default)
    if value not in choices:
        raise ValueError(f"{field}: one of {', '.join(choices)}")
    return str(value)


def int_param(parameters: dict[str, Any], field: str, low: int, high: int, default: int | None) -> int | None:
    value = parameters.get(field, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field}: an integer {low}..{high}")
    return value


def name_param(parameters: dict[str, Any], field: str, default: str) -> str:
    value = parameters.get(field, default)
    if not isinstance(value, str) or not value.strip() or len(value) > 255 or "/" in value or "\x00" in value:
        raise ValueError(f"{field}: a file name without '/' (at most 255 characters)")
    return value.strip()


# -- files ------------------------------------------------------------------------------
def owned_file(session: Session, ctx: TaskContext, file_id: Any, *, lock: bool = False) -> File:
    """The task account's file; TaskError when it is gone or belongs to someone else."""
    try:
        ident = uuid.UUID(str(file_id))
    except ValueError:
        raise TaskError(f"file {file_id} not found") from None
    query = select(File).where(File.id == ident, File.account_id == ctx.account_id)
    if lock:
        query = query.with_for_update()
    file = session.scalars(query).first()
    if file is None:
        raise TaskError(f"file {file_id} not found")
    return file


@dataclass(frozen=True)
class Content:
    """Where a file's stored bytes are: its blob's store (root) and key."""

    store: BlobStore
    storage_key: str

    def open(self) -> BinaryIO:
        """The bytes as a seekable binary file (close it when done)."""
        return open_blob_file(self.store, self.storage_key)


def file_content(session: Session, store: BlobStore, file: File) -> Content:
    """Where a file's bytes are: under its blob's own ``storage_root`` (after a migration)
    or the store's root."""
    blob = session.get(Blob, file.blob_id)
    if blob is None:
        raise TaskError(f"file {file.id} has no stored content")
    return Content(blob_store(store, blob.storage_root), blob.storage_key)


class PartWriter:
    """Writes a task's output part sequentially, hashing as it goes: whole blocks of
    ``BLOCK`` bytes go to the store as they fill (never the whole output in memory), and
    are made durable by ``sync`` and ``close``."""

    def __init__(self, ctx: TaskContext, suffix: str) -> None:
        self.store = ctx.services.store
        self.part = ctx.part(suffix)
        self.store.create_part(self.part, None)
        self.hasher = hashlib.sha256()
        self.size = 0  # bytes written, the pending ones included
        self._pending = bytearray()

    def write(self, data: bytes) -> int:
        self._pending += data
        self.hasher.update(data)
        self.size += len(data)
        if len(self._pending) >= BLOCK:
            self._write_pending()
        return len(data)

    def flush(self) -> None:
        pass

    def sync(self) -> None:
        """Make every byte written so far durable (a checkpoint may then record it)."""
        self._write_pending()
        self.store.sync_part(self.part)

    def close(self) -> str:
        """Make the part durable and return its SHA-256."""
        self.sync()
        return self.hasher.hexdigest()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        data, self._pending = bytes(self._pending), bytearray()
        read = blocks_reader(iter((data,)))
        self.store.write_part(self.part, self.size - len(data), read, len(data), durable=False)


def store_output(
    session: Session,
    ctx: TaskContext,
    writer: PartWriter,
    *,
    sha256: str,
    name: str,
    content_type: str,
    like: File,
    bundle_id: uuid.UUID | None = None,
) -> File:
    """Turn a finished part into a new file of the task's account, in ``like``'s pool (its
    bytes under the pool's storage path, like an upload into that pool)."""
    root = place_output(session, ctx, writer, sha256, like.pool_id)
    return create_file_from_part(
        session,
        ctx.services.store,
        ctx.services.settings.deduplication,
        part=writer.part,
        sha256=sha256,
        size=writer.size,
        new=NewFile(
            name=name,
            content_type=content_type,
            pool_id=like.pool_id,
            account_id=ctx.account_id,
            bundle_id=bundle_id if bundle_id is not None else like.bundle_id,
        ),
        root=root,
    )


def place_output(
    session: Session, ctx: TaskContext, writer: PartWriter, sha256: str, pool_id: uuid.UUID
) -> str | None:
    """Move a finished output part under the storage root of pool ``pool_id`` and return that
    root (None: the pool has none, the part stays under the store's root).

    A rename on one file system; across file systems (or stores) a verified,
    durable copy. Runs in the finishing transaction (the pool row is usually in
    the session already): a part moved just before a crash is left under the
    pool's root, where the task's partial-output cleanup does not look.
    """
    pool = session.get(Pool, pool_id)
    if pool is None or pool.storage_path is None:
        return None
    store = ctx.services.store
    if same_root(store, None, pool.storage_path):
        return None
    move_part(store, store.at(pool.storage_path), writer.part, size=writer.size, sha256=sha256)
    return pool.storage_path
