"""hmac-file-server's traditional upload: ``POST /upload`` with a multipart field ``file``.

The request body is decoded incrementally (werkzeug's sans-I/O multipart
decoder) and the bytes of the ``file`` field go straight into a fresh part of
the blob store, hashed on the way: no whole-body buffering and no temporary
copy. Other fields are skipped. A body that ends early leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session
from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, MultipartDecoder
from werkzeug.sansio.multipart import File as FilePart

from hmacfs.container import Services
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.errors import BadRequest, PayloadTooLarge
from hmacfs.files import NewFile, create_file_from_part
from hmacfs.models import File
from hmacfs.models.status import Protocol
from hmacfs.storage.blocking import offload
from hmacfs.storage.local import IncompleteBody, Reader
from hmacfs.xep0363.service import completed_task, count_upload, file_expiry
from hmacfs.xep0363.signing import extension_allowed

FIELD = "file"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class ReceivedPart:
    filename: str
    content_type: str
    size: int
    sha256: str


class _PartWriter:
    """Appends to one store part, hashing as it goes, refusing past ``limit`` bytes."""

    def __init__(self, path: os.PathLike[str], limit: int) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.hasher = hashlib.sha256()
        self.size = 0
        self.limit = limit

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge("file too large", details={"maxSize": self.limit})
        self.hasher.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def finish(self, fsync: bool) -> str:
        if fsync:
            offload(os.fsync, self.fd)
        return self.hasher.hexdigest()

    def close(self) -> None:
        os.close(self.fd)


def safe_filename(raw: str) -> str:
    """The last path component of a client-supplied name; BadRequest when nothing usable is left."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", "..") or "\0" in name or len(name.encode()) > 255:
        raise BadRequest("bad file name", code="BAD_FILENAME")
    return name


def receive_multipart(
    services: Services, part: str, boundary: bytes, read: Reader, length: int
) -> ReceivedPart:
    """Decode a multipart body of ``length`` bytes and stream its ``file`` field into ``part``.

    Raises BadRequest when there is no ``file`` field or the body is malformed,
    IncompleteBody when it ends early, PayloadTooLarge past ``uploads.max_upload_size``.
    The part is removed on any failure.
    """
    services.store.create_part(part, None)
    writer = _PartWriter(services.store.part_path(part), services.settings.uploads.max_upload_size)
    try:
        # The limit covers the decoder's buffer, which holds one read block.
        decoder = MultipartDecoder(boundary, max_form_memory_size=2 * _BLOCK)
        try:
            found = _decode(decoder, writer, read, length, services.settings.uploads.allowed_extensions)
        except ValueError as exc:  # the decoder's word for a malformed body
            raise BadRequest(f"malformed multipart body: {exc}", code="BAD_MULTIPART") from None
        digest = writer.finish(services.store.fsync)
    except BaseException:
        writer.close()
        services.store.delete_part(part)
        raise
    writer.close()
    return ReceivedPart(found[0], found[1], writer.size, digest)


def _allowed_name(raw: str, allowed: tuple[str, ...]) -> str:
    name = safe_filename(raw)
    if not extension_allowed(name, allowed):
        raise BadRequest("file extension not allowed", code="EXTENSION_NOT_ALLOWED")
    return name


def _decode(
    decoder: MultipartDecoder, writer: _PartWriter, read: Reader, length: int, allowed: tuple[str, ...]
) -> tuple[str, str]:
    block = _BLOCK
    remaining, found, receiving = length, None, False
    while True:
        event = decoder.next_event()
        if event is NEED_DATA:
            if decoder.complete:  # the whole body was given and it is not a full form
                raise BadRequest("multipart body ends before its closing boundary", code="BAD_MULTIPART")
            data = read(min(block, remaining)) if remaining else b""
            if remaining and not data:
                raise IncompleteBody("body ended early", details={"expected": length})
            remaining -= len(data)
            decoder.receive_data(data or None)
        elif isinstance(event, FilePart):
            receiving = event.name == FIELD and found is None
            if receiving:
                found = (
                    _allowed_name(event.filename, allowed),
                    event.headers.get("Content-Type", DEFAULT_CONTENT_TYPE),
                )
        elif isinstance(event, Data) and receiving:
            writer.write(event.data)
            receiving = event.more_data
        elif isinstance(event, Epilogue):
            break
    if found is None:
        raise BadRequest(f"multipart field '{FIELD}' is missing", code="MISSING_FILE_FIELD")
    return found


def store_multipart_upload(
    session: Session,
    services: Services,
    *,
    account_id: uuid.UUID | None,
    boundary: bytes,
    read: Reader,
    length: int,
) -> File:
    """Receive the ``file`` field and record it as a file (and a completed upload task). Flushes."""
    part = uuid.uuid4().hex
    received = receive_multipart(services, part, boundary, read, length)
    now = services.clock.now()
    new = NewFile(
        name=received.filename,
        content_type=received.content_type,
        pool_id=DEFAULT_POOL_ID,
        account_id=account_id,
        expired_at=file_expiry(session, services.settings, now),
    )
    try:
        file = create_file_from_part(
            session,
            services.store,
            services.settings.deduplication,
            part=part,
            sha256=received.sha256,
            size=received.size,
            new=new,
        )
    except BaseException:
        services.store.delete_part(part)
        raise
    session.add(completed_task(Protocol.MULTIPART, file, now))
    session.flush()
    count_upload(services, Protocol.MULTIPART, received.size)
    return file
