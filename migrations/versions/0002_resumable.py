"""Resumable uploads: cross-process progress throttling and tus concatenation.

Revision ID: 0002_resumable
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_resumable"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_tasks") as batch:
        batch.add_column(
            sa.Column(
                "progress_published",
                sa.Double(),
                nullable=True,
                comment="progress (0-100) of the last upload.progress event; throttles across processes",
            )
        )
        batch.add_column(
            sa.Column(
                "progress_published_at",
                sa.DateTime(timezone=True),
                nullable=True,
                comment="when it was published",
            )
        )
        batch.add_column(
            sa.Column(
                "concat",
                sa.String(length=8),
                nullable=True,
                comment="tus concatenation: partial|final; NULL for a plain upload",
            )
        )
        batch.create_check_constraint(
            op.f("ck_upload_tasks_concat_valid"), "concat IS NULL OR concat IN ('partial', 'final')"
        )


def downgrade() -> None:
    with op.batch_alter_table("upload_tasks") as batch:
        batch.drop_constraint(op.f("ck_upload_tasks_concat_valid"), type_="check")
        batch.drop_column("concat")
        batch.drop_column("progress_published_at")
        batch.drop_column("progress_published")
