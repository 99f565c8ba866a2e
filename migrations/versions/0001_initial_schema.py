"""Initial schema: pools, bundles, blobs, files, upload tasks and chunks, tasks,
events, client profiles, account quotas; plus the default pool.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 08:45:17.139413
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The pool every upload lands in unless it names another (hmacfs.db.DEFAULT_POOL_ID).
DEFAULT_POOL_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")


def upgrade() -> None:
    op.create_table(
        "account_quotas",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("max_bytes", sa.BigInteger(), nullable=False, comment="0 = unlimited"),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="when the row was created (UTC)",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="last change (UTC)",
        ),
        sa.CheckConstraint("max_bytes >= 0", name=op.f("ck_account_quotas_max_bytes_not_negative")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_quotas")),
        comment="storage limit per account; absent row = uploads.default_quota",
    )
    op.create_table(
        "blobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "sha256", sa.String(length=64), nullable=False, comment="SHA-256 of the bytes, lower-case hex"
        ),
        sa.Column("size", sa.BigInteger(), nullable=False, comment="bytes"),
        sa.Column(
            "shared",
            sa.Boolean(),
            server_default=sa.text("true"),
            nullable=False,
            comment="deduplicated: files with this hash reuse it",
        ),
        sa.Column("storage_key", sa.Text(), nullable=False, comment="path relative to storage_root"),
        sa.Column(
            "storage_root",
            sa.Text(),
            nullable=True,
            comment="root directory holding the blob; NULL = [storage] path",
        ),
        sa.Column(
            "ref_count",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="files pointing here; 0 = collectable",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("length(sha256) = 64", name=op.f("ck_blobs_sha256_hex")),
        sa.CheckConstraint("ref_count >= 0", name=op.f("ck_blobs_ref_count_not_negative")),
        sa.CheckConstraint("size >= 0", name=op.f("ck_blobs_size_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blobs")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_blobs_storage_key")),
        comment="stored bytes; shared blobs are content-addressed and reference counted",
    )
    op.create_index(
        "uq_blobs_sha256_shared",
        "blobs",
        ["sha256"],
        unique=True,
        postgresql_where=sa.text("shared"),
        sqlite_where=sa.text("shared"),
    )
    op.create_table(
        "bundles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False, comment="owning account"),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True, comment="bundle expiry (UTC)"),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="when the row was created (UTC)",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="last change (UTC)",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bundles")),
        comment="user-defined groups of files",
    )
    op.create_index(op.f("ix_bundles_account_id"), "bundles", ["account_id"], unique=False)
    op.create_table(
        "client_profiles",
        sa.Column("key", sa.String(length=128), nullable=False, comment="client fingerprint"),
        sa.Column(
            "connection_type",
            sa.String(length=16),
            server_default="unknown",
            nullable=False,
            comment="ethernet|wifi|lte|...",
        ),
        sa.Column(
            "throughput_bps",
            sa.Double(),
            server_default=sa.text("0"),
            nullable=False,
            comment="smoothed bytes per second",
        ),
        sa.Column("rtt_ms", sa.Double(), nullable=True, comment="smoothed round-trip time"),
        sa.Column("chunk_size", sa.BigInteger(), nullable=True, comment="preferred chunk size"),
        sa.Column("buffer_size", sa.BigInteger(), nullable=True, comment="preferred read buffer"),
        sa.Column("samples", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "last_seen",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("samples >= 0", name=op.f("ck_client_profiles_samples_not_negative")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_client_profiles")),
        comment="measured network behaviour per client, for buffer and chunk sizing",
    )
    op.create_table(
        "events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("account_id", sa.Uuid(), nullable=False, comment="only this account receives it"),
        sa.Column("type", sa.String(length=64), nullable=False, comment="e.g. upload.progress"),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        comment="append-only event log; ids are monotonic",
    )
    op.create_index("ix_events_account_id_id", "events", ["account_id", "id"], unique=False)
    op.create_index("ix_events_created_at", "events", ["created_at"], unique=False)
    op.create_table(
        "pools",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False, comment="operator-facing name"),
        sa.Column(
            "storage_path",
            sa.Text(),
            nullable=True,
            comment="root directory for this pool's blobs; NULL = [storage] path",
        ),
        sa.Column(
            "max_file_size",
            sa.BigInteger(),
            nullable=True,
            comment="largest file accepted, bytes; NULL = uploads.max_upload_size",
        ),
        sa.Column(
            "allowed_content_types",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
            comment="MIME types or type/* patterns accepted; NULL = any",
        ),
        sa.Column(
            "file_ttl_seconds",
            sa.BigInteger(),
            nullable=True,
            comment="default lifetime of a file, seconds; NULL = forever",
        ),
        sa.Column(
            "public",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="files are shared across accounts",
        ),
        sa.Column(
            "allow_anonymous",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="uploads without an account (tus)",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="when the row was created (UTC)",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="last change (UTC)",
        ),
        sa.CheckConstraint(
            "file_ttl_seconds IS NULL OR file_ttl_seconds > 0", name=op.f("ck_pools_file_ttl_positive")
        ),
        sa.CheckConstraint(
            "max_file_size IS NULL OR max_file_size > 0", name=op.f("ck_pools_max_file_size_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pools")),
        sa.UniqueConstraint("name", name=op.f("uq_pools_name")),
        comment="storage pools: where files live and the policy they follow",
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False, comment="public id in URLs"),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column(
            "custom_type",
            sa.String(length=100),
            nullable=True,
            comment="registered handler name for type Custom",
        ),
        sa.Column("status", sa.String(length=16), server_default="Pending", nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False, comment="owner"),
        sa.Column("progress", sa.Double(), server_default=sa.text("0"), nullable=False, comment="0..100"),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "results",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
            comment="results and resumable checkpoints",
        ),
        sa.Column(
            "sealed_secret",
            sa.LargeBinary(),
            nullable=True,
            comment="secret parameter sealed with the server key; erased when the task ends",
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False, comment="0..100"),
        sa.Column("estimated_duration_seconds", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True, comment="worker holding it"),
        sa.Column(
            "lease_expires_at", sa.DateTime(timezone=True), nullable=True, comment="lapsed lease = retry"
        ),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=True, comment="not claimed before this"),
        sa.Column(
            "last_activity",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="when the row was created (UTC)",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="last change (UTC)",
        ),
        sa.CheckConstraint(
            "status IN ('Pending', 'InProgress', 'Paused', 'Completed', 'Failed', 'Cancelled', 'Expired')",
            name=op.f("ck_tasks_status_valid"),
        ),
        sa.CheckConstraint(
            "type IN ('FileUpload', 'FileMove', 'FileCompress', 'FileDecompress', 'FileEncrypt', 'FileDecrypt', 'BulkOperation', 'StorageMigration', 'FileConversion', 'Custom')",
            name=op.f("ck_tasks_type_valid"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_tasks_attempts_not_negative")),
        sa.CheckConstraint("priority BETWEEN 0 AND 100", name=op.f("ck_tasks_priority_range")),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name=op.f("ck_tasks_progress_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("task_id", name=op.f("uq_tasks_task_id")),
        comment="generic background work (move, compress, encrypt, ...)",
    )
    op.bulk_insert(
        sa.table("pools", sa.column("id", sa.Uuid()), sa.column("name", sa.String())),
        [{"id": DEFAULT_POOL_ID, "name": "default"}],
    )
    op.create_index("ix_tasks_account_id_status", "tasks", ["account_id", "status"], unique=False)
    op.create_index("ix_tasks_account_id_type", "tasks", ["account_id", "type"], unique=False)
    op.create_index(
        "ix_tasks_lease_expires_at",
        "tasks",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'InProgress'"),
        sqlite_where=sa.text("status = 'InProgress'"),
    )
    op.create_index(
        "ix_tasks_pending_priority",
        "tasks",
        [sa.literal_column("priority DESC"), "created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'Pending'"),
        sqlite_where=sa.text("status = 'Pending'"),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True, comment="owner; NULL for XEP-0363 slots"),
        sa.Column("pool_id", sa.Uuid(), nullable=False),
        sa.Column("bundle_id", sa.Uuid(), nullable=True),
        sa.Column(
            "path", sa.Text(), nullable=True, comment="XEP-0363 slot path 'slot/name'; unique while present"
        ),
        sa.Column("name", sa.Text(), nullable=False, comment="file name shown to users"),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False, comment="bytes as the user sees them"),
        sa.Column("blob_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False, comment="content hash, hex (the ETag)"),
        sa.Column("encrypted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "encryption",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
            comment="parameters of the stored ciphertext (no key material)",
        ),
        sa.Column(
            "expired_at", sa.DateTime(timezone=True), nullable=True, comment="deleted by cleanup after this"
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="when the row was created (UTC)",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="last change (UTC)",
        ),
        sa.CheckConstraint("size >= 0", name=op.f("ck_files_size_not_negative")),
        sa.ForeignKeyConstraint(["blob_id"], ["blobs.id"], name=op.f("fk_files_blob_id_blobs")),
        sa.ForeignKeyConstraint(
            ["bundle_id"], ["bundles.id"], name=op.f("fk_files_bundle_id_bundles"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["pool_id"], ["pools.id"], name=op.f("fk_files_pool_id_pools")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("path", name=op.f("uq_files_path")),
        comment="a stored file as users see it",
    )
    op.create_index("ix_files_account_id_sha256", "files", ["account_id", "sha256"], unique=False)
    op.create_index(op.f("ix_files_blob_id"), "files", ["blob_id"], unique=False)
    op.create_index(op.f("ix_files_bundle_id"), "files", ["bundle_id"], unique=False)
    op.create_index(
        "ix_files_expired_at",
        "files",
        ["expired_at"],
        unique=False,
        postgresql_where=sa.text("expired_at IS NOT NULL"),
        sqlite_where=sa.text("expired_at IS NOT NULL"),
    )
    op.create_index(op.f("ix_files_pool_id"), "files", ["pool_id"], unique=False)
    op.create_table(
        "upload_tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False, comment="public id in URLs"),
        sa.Column(
            "protocol", sa.String(length=16), nullable=False, comment="xep0363|multipart|chunked|drive|tus"
        ),
        sa.Column("status", sa.String(length=16), server_default="Pending", nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True, comment="owner; NULL when anonymous"),
        sa.Column("pool_id", sa.Uuid(), nullable=False),
        sa.Column("bundle_id", sa.Uuid(), nullable=True),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("file_size", sa.BigInteger(), nullable=True, comment="bytes; NULL while deferred"),
        sa.Column(
            "size_deferred",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="tus Upload-Defer-Length",
        ),
        sa.Column(
            "content_type", sa.String(length=255), server_default="application/octet-stream", nullable=False
        ),
        sa.Column(
            "chunk_size", sa.BigInteger(), nullable=False, comment="bytes per chunk (last may be short)"
        ),
        sa.Column("chunks_count", sa.Integer(), nullable=True, comment="NULL while the size is deferred"),
        sa.Column("chunks_uploaded", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("bytes_received", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "upload_offset",
            sa.BigInteger(),
            server_default=sa.text("0"),
            nullable=False,
            comment="contiguous bytes (tus offset)",
        ),
        sa.Column("hash", sa.String(length=64), nullable=True, comment="declared SHA-256, hex"),
        sa.Column(
            "encrypt_requested",
            sa.Boolean(),
            server_default=sa.text("false"),
            nullable=False,
            comment="encrypt after completion",
        ),
        sa.Column(
            "encrypt_password_sealed",
            sa.LargeBinary(),
            nullable=True,
            comment="password sealed with the server key; never clear text; erased after use",
        ),
        sa.Column(
            "upload_metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
            comment="protocol metadata (tus Upload-Metadata, ...)",
        ),
        sa.Column("client_profile_key", sa.String(length=128), nullable=True, comment="network profile used"),
        sa.Column("file_id", sa.Uuid(), nullable=True, comment="the file once completed"),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "expired_at", sa.DateTime(timezone=True), nullable=True, comment="expiry given to the file"
        ),
        sa.Column(
            "last_activity",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="when the row was created (UTC)",
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
            comment="last change (UTC)",
        ),
        sa.CheckConstraint(
            "protocol IN ('xep0363', 'multipart', 'chunked', 'drive', 'tus')",
            name=op.f("ck_upload_tasks_protocol_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('Pending', 'InProgress', 'Paused', 'Completed', 'Failed', 'Cancelled', 'Expired')",
            name=op.f("ck_upload_tasks_status_valid"),
        ),
        sa.CheckConstraint("bytes_received >= 0", name=op.f("ck_upload_tasks_bytes_received_not_negative")),
        sa.CheckConstraint("chunk_size > 0", name=op.f("ck_upload_tasks_chunk_size_positive")),
        sa.CheckConstraint(
            "file_size IS NOT NULL OR size_deferred", name=op.f("ck_upload_tasks_size_known_or_deferred")
        ),
        sa.CheckConstraint(
            "file_size IS NULL OR file_size >= 0", name=op.f("ck_upload_tasks_file_size_not_negative")
        ),
        sa.CheckConstraint("upload_offset >= 0", name=op.f("ck_upload_tasks_upload_offset_not_negative")),
        sa.ForeignKeyConstraint(
            ["bundle_id"], ["bundles.id"], name=op.f("fk_upload_tasks_bundle_id_bundles"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["client_profile_key"],
            ["client_profiles.key"],
            name=op.f("fk_upload_tasks_client_profile_key_client_profiles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_upload_tasks_file_id_files"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["pool_id"], ["pools.id"], name=op.f("fk_upload_tasks_pool_id_pools")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_tasks")),
        sa.UniqueConstraint("task_id", name=op.f("uq_upload_tasks_task_id")),
        comment="one row per upload, whatever the protocol",
    )
    op.create_index(
        "ix_upload_tasks_account_id_status", "upload_tasks", ["account_id", "status"], unique=False
    )
    op.create_index("ix_upload_tasks_hash", "upload_tasks", ["hash"], unique=False)
    op.create_index(op.f("ix_upload_tasks_pool_id"), "upload_tasks", ["pool_id"], unique=False)
    op.create_index(
        "ix_upload_tasks_status_last_activity", "upload_tasks", ["status", "last_activity"], unique=False
    )
    op.create_table(
        "upload_chunks",
        sa.Column("upload_id", sa.Uuid(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False, comment="byte offset in the file"),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False, comment="SHA-256 of this chunk, hex"),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("chunk_index >= 0", name=op.f("ck_upload_chunks_chunk_index_not_negative")),
        sa.CheckConstraint("size >= 0", name=op.f("ck_upload_chunks_size_not_negative")),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["upload_tasks.id"],
            name=op.f("fk_upload_chunks_upload_id_upload_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "chunk_index", name=op.f("pk_upload_chunks")),
        comment="received chunks; a row is written only after the bytes are fsynced",
    )


def downgrade() -> None:
    op.drop_table("upload_chunks")
    op.drop_index("ix_upload_tasks_status_last_activity", table_name="upload_tasks")
    op.drop_index(op.f("ix_upload_tasks_pool_id"), table_name="upload_tasks")
    op.drop_index("ix_upload_tasks_hash", table_name="upload_tasks")
    op.drop_index("ix_upload_tasks_account_id_status", table_name="upload_tasks")
    op.drop_table("upload_tasks")
    op.drop_index(op.f("ix_files_pool_id"), table_name="files")
    op.drop_index("ix_files_expired_at", table_name="files")
    op.drop_index(op.f("ix_files_bundle_id"), table_name="files")
    op.drop_index(op.f("ix_files_blob_id"), table_name="files")
    op.drop_index("ix_files_account_id_sha256", table_name="files")
    op.drop_table("files")
    op.drop_index("ix_tasks_pending_priority", table_name="tasks")
    op.drop_index("ix_tasks_lease_expires_at", table_name="tasks")
    op.drop_index("ix_tasks_account_id_type", table_name="tasks")
    op.drop_index("ix_tasks_account_id_status", table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("pools")
    op.drop_index("ix_events_created_at", table_name="events")
    op.drop_index("ix_events_account_id_id", table_name="events")
    op.drop_table("events")
    op.drop_table("client_profiles")
    op.drop_index(op.f("ix_bundles_account_id"), table_name="bundles")
    op.drop_table("bundles")
    op.drop_index("uq_blobs_sha256_shared", table_name="blobs")
    op.drop_table("blobs")
    op.drop_table("account_quotas")
