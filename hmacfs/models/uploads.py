"""Upload tasks (every protocol) and their received chunks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from hmacfs.models.base import Base, JSONType, Timestamped, in_list, utcnow
from hmacfs.models.status import Protocol, UploadStatus, values


class UploadTask(Timestamped, Base):
    __tablename__ = "upload_tasks"
    __table_args__ = (
        CheckConstraint(in_list("status", values(UploadStatus)), name="status_valid"),
        CheckConstraint(in_list("protocol", values(Protocol)), name="protocol_valid"),
        CheckConstraint("file_size IS NULL OR file_size >= 0", name="file_size_not_negative"),
        CheckConstraint("chunk_size > 0", name="chunk_size_positive"),
        CheckConstraint("bytes_received >= 0", name="bytes_received_not_negative"),
        CheckConstraint("upload_offset >= 0", name="upload_offset_not_negative"),
        CheckConstraint("hashed_bytes >= 0", name="hashed_bytes_not_negative"),
        CheckConstraint("file_size IS NOT NULL OR size_deferred", name="size_known_or_deferred"),
        CheckConstraint("concat IS NULL OR concat IN ('partial', 'final')", name="concat_valid"),
        Index("ix_upload_tasks_account_id_status", "account_id", "status"),
        Index("ix_upload_tasks_status_last_activity", "status", "last_activity"),
        Index("ix_upload_tasks_hash", "hash"),
        Index("ix_upload_tasks_uploader_created_at", "uploader", "created_at"),
        {"comment": "one row per upload, whatever the protocol"},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    task_id: Mapped[str] = mapped_column(String(64), unique=True, comment="public id in URLs")
    protocol: Mapped[str] = mapped_column(String(16), comment="xep0363|multipart|chunked|drive|tus")
    status: Mapped[str] = mapped_column(
        String(16), server_default=UploadStatus.PENDING.value, default=UploadStatus.PENDING.value
    )
    account_id: Mapped[uuid.UUID | None] = mapped_column(comment="owner; NULL when anonymous")
    pool_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pools.id"), index=True)
    bundle_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bundles.id", ondelete="SET NULL"))
    file_name: Mapped[str] = mapped_column(Text)
    file_size: Mapped[int | None] = mapped_column(BigInteger, comment="bytes; NULL while deferred")
    size_deferred: Mapped[bool] = mapped_column(
        server_default=text("false"), default=False, comment="tus Upload-Defer-Length"
    )
    content_type: Mapped[str] = mapped_column(String(255), server_default="application/octet-stream")
    chunk_size: Mapped[int] = mapped_column(BigInteger, comment="bytes per chunk (last may be short)")
    chunks_count: Mapped[int | None] = mapped_column(comment="NULL while the size is deferred")
    chunks_uploaded: Mapped[int] = mapped_column(server_default=text("0"), default=0)
    bytes_received: Mapped[int] = mapped_column(BigInteger, server_default=text("0"), default=0)
    upload_offset: Mapped[int] = mapped_column(
        BigInteger, server_default=text("0"), default=0, comment="contiguous bytes (tus offset)"
    )
    hash: Mapped[str | None] = mapped_column(String(64), comment="declared SHA-256, hex")
    hashed_bytes: Mapped[int] = mapped_column(
        BigInteger, server_default=text("0"), default=0, comment="bytes [0, hashed_bytes) are in hash_state"
    )
    hash_state: Mapped[bytes | None] = mapped_column(
        comment="running SHA-256 state (OpenSSL SHA256_CTX, 112 bytes); NULL = nothing hashed"
    )
    hash_generation: Mapped[int] = mapped_column(
        server_default=text("0"), default=0,
        comment="bumped whenever committed bytes are replaced; guards hash_state updates",
    )  # fmt: skip
    encrypt_requested: Mapped[bool] = mapped_column(
        server_default=text("false"), default=False, comment="encrypt after completion"
    )
    encrypt_password_sealed: Mapped[bytes | None] = mapped_column(
        comment="password sealed with the server key; never clear text; erased after use"
    )
    upload_metadata: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, comment="protocol metadata (tus Upload-Metadata, ...)"
    )
    client_profile_key: Mapped[str | None] = mapped_column(
        ForeignKey("client_profiles.key", ondelete="SET NULL"), comment="network profile used"
    )
    client_address: Mapped[str | None] = mapped_column(
        String(45), comment="client address of the last chunk (network switches are noticed by it)"
    )
    client_network: Mapped[str | None] = mapped_column(
        String(16), comment="network class of the last chunk: ethernet|wifi|lte|cellular|vpn|unknown"
    )
    file_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("files.id", ondelete="SET NULL"), comment="the file once completed"
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    expired_at: Mapped[datetime | None] = mapped_column(comment="expiry given to the file")
    last_activity: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"), default=utcnow)
    progress_published: Mapped[float | None] = mapped_column(
        comment="progress (0-100) of the last upload.progress event; throttles across processes"
    )
    progress_published_at: Mapped[datetime | None] = mapped_column(comment="when it was published")
    concat: Mapped[str | None] = mapped_column(
        String(8), comment="tus concatenation: partial|final; NULL for a plain upload"
    )
    storage_root: Mapped[str | None] = mapped_column(
        Text, comment="root directory holding the part (the pool's at creation); NULL = [storage] path"
    )
    reserved: Mapped[bool] = mapped_column(
        server_default=text("true"), default=True,
        comment="declared size still reserved (disk and quota); false once released: received bytes count",
    )  # fmt: skip
    uploader: Mapped[str | None] = mapped_column(
        String(255),
        comment="who the daily quota charges: file-share token sub or account; NULL = not counted",
    )
    completed_at: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()


class UploadChunk(Base):
    __tablename__ = "upload_chunks"
    __table_args__ = (
        CheckConstraint("chunk_index >= 0", name="chunk_index_not_negative"),
        CheckConstraint("size >= 0", name="size_not_negative"),
        {"comment": "received chunks; a row is written only after the bytes are fsynced"},
    )

    upload_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("upload_tasks.id", ondelete="CASCADE"), primary_key=True
    )
    chunk_index: Mapped[int] = mapped_column(primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, comment="byte offset in the file")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(
        String(64), comment="SHA-256 of this chunk, hex, when the client sent one to check; else NULL"
    )
    received_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"), default=utcnow)
