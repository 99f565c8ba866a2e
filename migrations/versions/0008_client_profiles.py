"""Client profiles are written: owner, client id, loss, reliability and recent history.

``client_profiles`` existed since 0001 but nothing wrote it. hmacfs.network.profiles
now keeps one row per account, client and network class; the cleanup pass
deletes rows unseen for ``performance.profile_persistence_duration`` (hence the
index on last_seen). Nothing to backfill: the table was always empty.

Revision ID: 0008_client_profiles
Revises: 0007_admin_views
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from hmacfs.models.base import JSONType

revision = "0008_client_profiles"
down_revision = "0007_admin_views"
branch_labels = None
depends_on = None

_TABLE = "client_profiles"


def upgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(
            sa.Column("account_id", sa.Uuid(), nullable=True, comment="owner; NULL = anonymous uploads")
        )
        batch.add_column(
            sa.Column(
                "client_id", sa.String(64), server_default="", nullable=False,
                comment="Hmacfs-Client-Id, else a hash of User-Agent and address prefix",
            )
        )  # fmt: skip
        batch.add_column(
            sa.Column(
                "loss_ratio", sa.Double(), server_default=sa.text("0"), nullable=False,
                comment="moving average of lost/resent segments per segment",
            )
        )  # fmt: skip
        batch.add_column(
            sa.Column(
                "reliability", sa.Double(), server_default=sa.text("1"), nullable=False,
                comment="completed / attempted bodies, decaying window",
            )
        )  # fmt: skip
        batch.add_column(
            sa.Column(
                "window_bodies", sa.Double(), server_default=sa.text("0"), nullable=False,
                comment="decayed count of bodies behind reliability",
            )
        )  # fmt: skip
        batch.add_column(
            sa.Column(
                "interface_history", JSONType, nullable=True,
                comment="recent bodies: at, address prefix, bytes/s, rtt, outcome (newest last)",
            )
        )  # fmt: skip
        batch.alter_column("key", existing_type=sa.String(128), comment="account:client id:network class")
        batch.alter_column(
            "connection_type", existing_type=sa.String(16), existing_server_default="unknown",
            comment="network class: ethernet|wifi|lte|cellular|vpn|unknown",
        )  # fmt: skip
        batch.alter_column(
            "throughput_bps", existing_type=sa.Double(), existing_server_default=sa.text("0"),
            comment="moving average of goodput, bytes/s; 0 = unmeasured",
        )  # fmt: skip
        batch.alter_column(
            "rtt_ms", existing_type=sa.Double(), comment="moving average of the round trip, ms"
        )
        batch.alter_column("chunk_size", existing_type=sa.BigInteger(), comment="last recommended chunk size")
        batch.alter_column(
            "buffer_size", existing_type=sa.BigInteger(), comment="last recommended read buffer"
        )
        batch.alter_column(
            "samples",
            existing_type=sa.Integer(),
            existing_server_default=sa.text("0"),
            comment="bodies measured",
        )
        batch.create_check_constraint(
            op.f("ck_client_profiles_reliability_is_a_ratio"), "reliability >= 0 AND reliability <= 1"
        )
        batch.create_check_constraint(
            op.f("ck_client_profiles_loss_is_a_ratio"), "loss_ratio >= 0 AND loss_ratio <= 1"
        )
    op.create_index("ix_client_profiles_last_seen", _TABLE, ["last_seen"])
    op.create_index("ix_client_profiles_account_id", _TABLE, ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_client_profiles_account_id", table_name=_TABLE)
    op.drop_index("ix_client_profiles_last_seen", table_name=_TABLE)
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_constraint(op.f("ck_client_profiles_loss_is_a_ratio"), type_="check")
        batch.drop_constraint(op.f("ck_client_profiles_reliability_is_a_ratio"), type_="check")
        for column in (
            "interface_history",
            "window_bodies",
            "reliability",
            "loss_ratio",
            "client_id",
            "account_id",
        ):
            batch.drop_column(column)
