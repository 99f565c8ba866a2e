"""Pool storage paths: an upload's part lives under its pool's root, recorded on the row.

Revision ID: 0003_upload_storage_root
Revises: 0002_events
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_upload_storage_root"
down_revision = "0002_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable without a default: uploads begun before this revision keep their
    # parts under [storage] path, which is what NULL means.
    with op.batch_alter_table("upload_tasks") as batch:
        batch.add_column(
            sa.Column(
                "storage_root",
                sa.Text(),
                nullable=True,
                comment="root directory holding the part (the pool's at creation); NULL = [storage] path",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("upload_tasks") as batch:
        batch.drop_column("storage_root")
