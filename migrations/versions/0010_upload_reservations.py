"""Uploads record whether their declared size is still reserved, and who uploaded them.

``reserved``: a create reserves its declared size on disk (the part is
preallocated) and against the account's quota. The cleanup step
``uploads.reservations`` releases the reservation of an upload idle longer than
``[uploads] reservation_timeout``: the unreceived ranges of its part are punched
out and the flag cleared, so the quota counts only the bytes it received.

``uploader``: who the daily quota (``[xep0363] daily_quota``) charges: the
``sub`` of a Prosody file-share token, else the bearer account. The index
matches the rolling 24-hour sum.

Revision ID: 0010_upload_reservations
Revises: 0009_upload_writers
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_upload_reservations"
down_revision = "0009_upload_writers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy of the table): the admin views over upload_tasks stay.
    op.add_column(
        "upload_tasks",
        sa.Column(
            "reserved",
            sa.Boolean(),
            server_default=sa.text("true"),
            nullable=False,
            comment="declared size still reserved (disk and quota); false once released: received bytes count",
        ),
    )
    op.add_column(
        "upload_tasks",
        sa.Column(
            "uploader",
            sa.String(length=255),
            nullable=True,
            comment="who the daily quota charges: file-share token sub or account; NULL = not counted",
        ),
    )
    op.create_index("ix_upload_tasks_uploader_created_at", "upload_tasks", ["uploader", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_upload_tasks_uploader_created_at", table_name="upload_tasks")
    with op.batch_alter_table("upload_tasks", recreate="never") as batch:
        batch.drop_column("uploader")
        batch.drop_column("reserved")
