"""Taking over a silent chunk writer (a client that switched networks mid-chunk).

``upload_writers`` holds a row per writer that has gone silent mid-body, which
a retry from the upload's owner marks as preempted (``hmacfs.uploads.handoff``);
``upload_tasks.client_address`` and ``client_network`` remember where the last
chunk came from, so a chunk from another address or network class is noticed.

Revision ID: 0009_upload_writers
Revises: 0008_client_profiles
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_upload_writers"
down_revision = "0008_client_profiles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_writers",
        # No foreign key: see hmacfs.models.handoff (a tus writer's own row lock would block it).
        sa.Column("upload_id", sa.Uuid(), nullable=False, comment="upload_tasks.id"),
        sa.Column("slot", sa.Integer(), nullable=False, comment="chunk index; -1 = the offset writer (tus)"),
        sa.Column("token", sa.String(32), nullable=False, comment="random id of the writing request"),
        sa.Column("client_address", sa.String(45), nullable=True, comment="the writer's client address"),
        sa.Column("network_class", sa.String(16), nullable=True, comment="the writer's network class"),
        sa.Column(
            "silent_ms",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="how long the writer has had no byte, by its own clock",
        ),
        sa.Column(
            "preempted_by",
            sa.String(32),
            nullable=True,
            comment="token of the request taking over; the writer stops at its next check",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("slot >= -1", name=op.f("ck_upload_writers_slot_valid")),
        sa.CheckConstraint("silent_ms >= 0", name=op.f("ck_upload_writers_silent_ms_not_negative")),
        sa.PrimaryKeyConstraint("upload_id", "slot", name=op.f("pk_upload_writers")),
        comment="silent mid-body writers of an upload's chunk, and requests taking over from them",
    )
    op.add_column(
        "upload_tasks",
        sa.Column(
            "client_address",
            sa.String(45),
            nullable=True,
            comment="client address of the last chunk (network switches are noticed by it)",
        ),
    )
    op.add_column(
        "upload_tasks",
        sa.Column(
            "client_network",
            sa.String(16),
            nullable=True,
            comment="network class of the last chunk: ethernet|wifi|lte|cellular|vpn|unknown",
        ),
    )


def downgrade() -> None:
    op.drop_table("upload_writers")
    # SQLite 3.35+ drops a plain column in place; the admin views do not name these two.
    op.drop_column("upload_tasks", "client_network")
    op.drop_column("upload_tasks", "client_address")
