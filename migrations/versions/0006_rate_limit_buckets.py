"""Token buckets of the rate limiter, in the database every worker and node shares.

One row per limited key (an address, an account, their create and failed-
authentication buckets). ``hmacfs.ratelimit`` takes tokens with one
``INSERT .. ON CONFLICT DO UPDATE`` on PostgreSQL; rows idle for an hour are
full buckets again and are deleted.

Revision ID: 0006_rate_limit_buckets
Revises: 0005_upload_running_hash
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_rate_limit_buckets"
down_revision = "0005_upload_running_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_buckets",
        sa.Column("key", sa.String(200), nullable=False, comment="kind:subject, e.g. address:10.0.0.7"),
        sa.Column("tokens", sa.Double(), nullable=False, comment="tokens left at updated_at"),
        sa.Column(
            "updated_at",
            sa.Double(),
            nullable=False,
            comment="database clock, Unix seconds, of the last take",
        ),
        sa.Column(
            "rate", sa.Double(), nullable=False, comment="tokens added per second (the last take's setting)"
        ),
        sa.Column("burst", sa.Double(), nullable=False, comment="bucket capacity (the last take's setting)"),
        sa.Column("cost", sa.Double(), nullable=False, comment="tokens the last take asked for (0 = a look)"),
        sa.Column("allowed", sa.Boolean(), nullable=False, comment="whether the last take was granted"),
        sa.CheckConstraint("tokens >= 0", name=op.f("ck_rate_limit_buckets_tokens_not_negative")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_buckets")),
        comment="one token bucket per limited key; an absent row is a full bucket",
    )
    op.create_index("ix_rate_limit_buckets_updated_at", "rate_limit_buckets", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_rate_limit_buckets_updated_at", table_name="rate_limit_buckets")
    op.drop_table("rate_limit_buckets")
