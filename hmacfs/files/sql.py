"""The files aggregate's SQL (``blobs`` and ``files``): each function hides its dialect.

PostgreSQL and SQLite run the same contract (``ON CONFLICT`` on both); only
PostgreSQL skips rows another transaction holds. The one-request upload's
single statement is ``hmacfs.files.one_shot``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Executable, Table, select, text
from sqlalchemy.orm import Session

from hmacfs.db import built_once, dialect_insert, is_postgresql
from hmacfs.models import Blob, File


def orphan_blobs(session: Session, limit: int) -> Sequence[Blob]:
    """Up to ``limit`` blobs no file references, each row locked until the transaction ends
    (on PostgreSQL rows another collector holds are skipped, not waited for)."""
    query = select(Blob).where(Blob.ref_count <= 0).limit(limit)
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).all()


@dataclass(frozen=True)
class Statements:
    """The statements of the upload hot path, built once per dialect: building a statement
    costs more Python than running a cached one (values are bound at execution)."""

    reference_shared_blob: Executable
    insert_blob: Executable
    insert_file: Executable


_BUILT: dict[str, Statements] = {}


def statements(session: Session) -> Statements:
    return built_once(_BUILT, session, _build_statements)


def _build_statements(session: Session) -> Statements:
    insert = dialect_insert(session)
    blobs, files = cast(Table, Blob.__table__), cast(Table, File.__table__)
    upsert = insert(blobs).values(shared=True)
    upsert = upsert.on_conflict_do_update(
        index_elements=[blobs.c.sha256],
        index_where=text("shared"),
        set_={"ref_count": blobs.c.ref_count + 1},
    )
    add_file = insert(files).on_conflict_do_nothing(index_elements=[files.c.path])
    return Statements(
        reference_shared_blob=upsert.returning(blobs.c.id, blobs.c.storage_key, blobs.c.storage_root),
        insert_blob=insert(blobs).returning(blobs.c.id, blobs.c.storage_key, blobs.c.storage_root),
        insert_file=select(File).from_statement(add_file.returning(*files.c)),
    )
