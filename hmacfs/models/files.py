"""Pools, bundles, content-addressed blobs and the files that point at them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from hmacfs.models.base import Base, JSONType, Timestamped, utcnow


class Pool(Timestamped, Base):
    __tablename__ = "pools"
    __table_args__ = (
        CheckConstraint("max_file_size IS NULL OR max_file_size > 0", name="max_file_size_positive"),
        CheckConstraint("file_ttl_seconds IS NULL OR file_ttl_seconds > 0", name="file_ttl_positive"),
        {"comment": "storage pools: where files live and the policy they follow"},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True, comment="operator-facing name")
    storage_path: Mapped[str | None] = mapped_column(
        Text, comment="root directory for this pool's blobs; NULL = [storage] path"
    )
    max_file_size: Mapped[int | None] = mapped_column(
        BigInteger, comment="largest file accepted, bytes; NULL = uploads.max_upload_size"
    )
    allowed_content_types: Mapped[list[str] | None] = mapped_column(
        JSONType, comment="MIME types or type/* patterns accepted; NULL = any"
    )
    file_ttl_seconds: Mapped[int | None] = mapped_column(
        BigInteger, comment="default lifetime of a file, seconds; NULL = forever"
    )
    public: Mapped[bool] = mapped_column(
        server_default=text("false"), default=False, comment="files are shared across accounts"
    )
    allow_anonymous: Mapped[bool] = mapped_column(
        server_default=text("false"), default=False, comment="uploads without an account (tus)"
    )


class Bundle(Timestamped, Base):
    __tablename__ = "bundles"
    __table_args__ = {"comment": "user-defined groups of files"}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(index=True, comment="owning account")
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    expired_at: Mapped[datetime | None] = mapped_column(comment="bundle expiry (UTC)")


class Blob(Base):
    __tablename__ = "blobs"
    __table_args__ = (
        CheckConstraint("size >= 0", name="size_not_negative"),
        CheckConstraint("ref_count >= 0", name="ref_count_not_negative"),
        CheckConstraint("length(sha256) = 64", name="sha256_hex"),
        # Deduplication: at most one shared blob per content hash.
        Index(
            "uq_blobs_sha256_shared",
            "sha256",
            unique=True,
            postgresql_where=text("shared"),
            sqlite_where=text("shared"),
        ),
        # Shared keys derive from the hash (unique above); a table-wide unique key would
        # be a second, non-arbiter constraint for the dedup upsert to trip over.
        Index(
            "uq_blobs_storage_key_unshared",
            "storage_key",
            unique=True,
            postgresql_where=text("NOT shared"),
            sqlite_where=text("NOT shared"),
        ),
        {"comment": "stored bytes; shared blobs are content-addressed and reference counted"},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    sha256: Mapped[str] = mapped_column(String(64), comment="SHA-256 of the bytes, lower-case hex")
    size: Mapped[int] = mapped_column(BigInteger, comment="bytes")
    shared: Mapped[bool] = mapped_column(
        server_default=text("true"), default=True, comment="deduplicated: files with this hash reuse it"
    )
    storage_key: Mapped[str] = mapped_column(Text, index=True, comment="path relative to storage_root")
    storage_root: Mapped[str | None] = mapped_column(
        Text, comment="root directory holding the blob; NULL = [storage] path"
    )
    ref_count: Mapped[int] = mapped_column(
        server_default=text("0"), default=0, comment="files pointing here; 0 = collectable"
    )
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"), default=utcnow)


class File(Timestamped, Base):
    __tablename__ = "files"
    __table_args__ = (
        CheckConstraint("size >= 0", name="size_not_negative"),
        Index("ix_files_account_id_sha256", "account_id", "sha256"),
        Index(
            "ix_files_expired_at",
            "expired_at",
            postgresql_where=text("expired_at IS NOT NULL"),
            sqlite_where=text("expired_at IS NOT NULL"),
        ),
        {"comment": "a stored file as users see it"},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID | None] = mapped_column(comment="owner; NULL for XEP-0363 slots")
    pool_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pools.id"), index=True)
    bundle_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bundles.id", ondelete="SET NULL"), index=True
    )
    path: Mapped[str | None] = mapped_column(
        Text, unique=True, comment="XEP-0363 slot path 'slot/name'; unique while present"
    )
    name: Mapped[str] = mapped_column(Text, comment="file name shown to users")
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger, comment="bytes as the user sees them")
    blob_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("blobs.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), comment="content hash, hex (the ETag)")
    encrypted: Mapped[bool] = mapped_column(server_default=text("false"), default=False)
    encryption: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, comment="parameters of the stored ciphertext (no key material)"
    )
    expired_at: Mapped[datetime | None] = mapped_column(comment="deleted by cleanup after this")
