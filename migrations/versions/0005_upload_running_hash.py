"""Upload tasks keep a running SHA-256 of their committed contiguous prefix.

Drive and chunked-API uploads used to hash the whole part again at
completion (0.9 s per GiB, after the last byte had arrived). Workers now
advance the hash in the background as chunks commit, and store its state on
the row, so any worker or node can continue it and completion hashes only
what is left. ``hash_generation`` changes whenever committed bytes are
replaced (a re-sent chunk with other bytes), so a hash computed over the old
bytes is never stored.

Chunks are no longer hashed one by one (each byte was hashed twice): a chunk
row keeps a SHA-256 only when the client sent one to check it against, so
``upload_chunks.sha256`` may now be NULL.

Revision ID: 0005_upload_running_hash
Revises: 0004_blob_key_unique_unshared
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_upload_running_hash"
down_revision = "0004_blob_key_unique_unshared"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_tasks") as batch:
        batch.add_column(
            sa.Column(
                "hashed_bytes",
                sa.BigInteger(),
                server_default=sa.text("0"),
                nullable=False,
                comment="bytes [0, hashed_bytes) are in hash_state",
            )
        )
        batch.add_column(
            sa.Column(
                "hash_state",
                sa.LargeBinary(),
                nullable=True,
                comment="running SHA-256 state (OpenSSL SHA256_CTX, 112 bytes); NULL = nothing hashed",
            )
        )
        batch.add_column(
            sa.Column(
                "hash_generation",
                sa.Integer(),
                server_default=sa.text("0"),
                nullable=False,
                comment="bumped whenever committed bytes are replaced; guards hash_state updates",
            )
        )
        batch.create_check_constraint(op.f("ck_upload_tasks_hashed_bytes_not_negative"), "hashed_bytes >= 0")
    with op.batch_alter_table("upload_chunks") as batch:
        batch.alter_column(
            "sha256",
            existing_type=sa.String(64),
            nullable=True,
            comment="SHA-256 of this chunk, hex, when the client sent one to check; else NULL",
            existing_comment="SHA-256 of this chunk, hex",
        )


def downgrade() -> None:
    op.execute("UPDATE upload_chunks SET sha256 = '' WHERE sha256 IS NULL")
    with op.batch_alter_table("upload_chunks") as batch:
        batch.alter_column(
            "sha256",
            existing_type=sa.String(64),
            nullable=False,
            comment="SHA-256 of this chunk, hex",
            existing_comment="SHA-256 of this chunk, hex, when the client sent one to check; else NULL",
        )
    with op.batch_alter_table("upload_tasks") as batch:
        batch.drop_constraint(op.f("ck_upload_tasks_hashed_bytes_not_negative"), type_="check")
        batch.drop_column("hash_generation")
        batch.drop_column("hash_state")
        batch.drop_column("hashed_bytes")
