"""Blob keys: unique among unshared blobs only (shared ones are unique by their hash).

Two uploads of the same new content could both pass the ``ON CONFLICT (sha256)``
check and then collide on the table-wide ``storage_key`` constraint, which is
not the statement's arbiter and so raised an error (a 500) instead of taking the
existing row. A shared blob's key is derived from its hash, so the partial
unique index on ``sha256`` already keeps shared keys unique; unshared keys
carry the part name and keep their own partial unique index.

Revision ID: 0004_blob_key_unique_unshared
Revises: 0003_upload_storage_root
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_blob_key_unique_unshared"
down_revision = "0003_upload_storage_root"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs") as batch:
        batch.drop_constraint("uq_blobs_storage_key", type_="unique")
    op.create_index(
        "uq_blobs_storage_key_unshared",
        "blobs",
        ["storage_key"],
        unique=True,
        postgresql_where=sa.text("NOT shared"),
        sqlite_where=sa.text("NOT shared"),
    )
    op.create_index("ix_blobs_storage_key", "blobs", ["storage_key"])


def downgrade() -> None:
    op.drop_index("ix_blobs_storage_key", table_name="blobs")
    op.drop_index("uq_blobs_storage_key_unshared", table_name="blobs")
    with op.batch_alter_table("blobs") as batch:
        batch.create_unique_constraint("uq_blobs_storage_key", ["storage_key"])
