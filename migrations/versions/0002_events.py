"""Event delivery state: the retention horizon of the event log and webhook cursors.

Revision ID: 0002_events
Revises: 0002_resumable
Create Date: 2026-11-21 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_events"
down_revision = "0002_resumable"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_log_state",
        sa.Column("id", sa.Integer(), nullable=False, comment="always 1"),
        sa.Column(
            "purged_through",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="every event with id <= this may be gone",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_log_state")),
        comment="single row (id = 1) describing the event log",
    )
    op.create_table(
        "webhook_cursors",
        sa.Column("webhook", sa.String(length=64), nullable=False, comment="sha256 of the webhook URL"),
        sa.Column(
            "last_event_id",
            sa.BigInteger(),
            nullable=False,
            comment="every event <= this is done, gaps aside",
        ),
        sa.Column(
            "gaps",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment="ids below last_event_id not seen yet -> unix time the gap was found",
        ),
        sa.Column(
            "attempts",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="failed tries of the head event",
        ),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="no retry before this (backoff)",
        ),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("webhook", name=op.f("pk_webhook_cursors")),
        comment="per-webhook delivery position; survives restarts",
    )


def downgrade() -> None:
    op.drop_table("webhook_cursors")
    op.drop_table("event_log_state")
