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
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.orm import Session
from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, MultipartDecoder
from werkzeug.sansio.multipart import Field as FormField
from werkzeug.sansio.multipart import File as FilePart

from hmacfs.container import Services
from hmacfs.errors import BadRequest, PayloadTooLarge
from hmacfs.models import File
from hmacfs.models.status import Protocol
from hmacfs.storage.blocking import offload
from hmacfs.storage.copying import IncompleteBody, Reader
from hmacfs.storage.local import WrittenRange, blocks_reader
from hmacfs.upload_signing import SignedUpload
from hmacfs.xep0363.service import record_one_shot_upload
from hmacfs.xep0363.signing import BadSignature, extension_allowed

FIELD = "file"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_BLOCK = 1024 * 1024
_MAX_PARTS = 16


class FieldStream:
    """One field of a multipart/form-data body, decoded as the body arrives
    (werkzeug's sans-I/O decoder): only one read block is held, other fields are
    skipped. ``open()`` finds the field, then ``chunks()`` or ``read()`` give its bytes.

    ``length`` (the Content-Length) bounds the reads; a body that ends early
    raises IncompleteBody. A malformed body is BadRequest INVALID_MULTIPART, a
    missing field BadRequest MISSING_FIELD.
    """

    def __init__(self, read: Reader, boundary: bytes, field: str, length: int | None = None) -> None:
        self._read = read
        self._remaining = length
        self._length = length
        self.field = field
        # The memory limit covers the decoder's buffer, which holds one read block.
        self._decoder = MultipartDecoder(boundary, max_form_memory_size=2 * _BLOCK, max_parts=_MAX_PARTS)
        self._events = self._decode()
        self._data: Iterator[bytes] | None = None
        self._reader: Reader | None = None

    def open(self) -> tuple[str, str]:
        """Skip to the field; return its (file name, content type)."""
        for event in self._events:
            if isinstance(event, (FormField, FilePart)) and event.name == self.field:
                self._data = self._field_data()
                content_type = event.headers.get("Content-Type", DEFAULT_CONTENT_TYPE)
                return getattr(event, "filename", "") or "", content_type
            if isinstance(event, Epilogue):
                break
        raise BadRequest(
            f"multipart field {self.field!r} is missing", code="MISSING_FIELD", details={"field": self.field}
        )

    def chunks(self) -> Iterator[bytes]:
        """The field's bytes, block by block."""
        if self._data is None:
            self.open()
        assert self._data is not None
        return self._data

    def read(self, size: int) -> bytes:
        """A Reader over the field's bytes: b"" once the field ends."""
        if self._reader is None:
            self._reader = blocks_reader(self.chunks())
        return self._reader(size)

    def finish(self) -> None:
        """Consume the rest of the body, checking that it is well formed to the end."""
        for event in self._events:
            if isinstance(event, Epilogue):
                return

    def _field_data(self) -> Iterator[bytes]:
        for event in self._events:
            if isinstance(event, Data):
                if event.data:
                    yield event.data
                if not event.more_data:
                    return

    def _decode(self) -> Iterator[object]:
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError as exc:  # the decoder's word for a malformed body
                raise BadRequest(f"malformed multipart body: {exc}", code="INVALID_MULTIPART") from None
            if event is not NEED_DATA:
                yield event
                continue
            if self._decoder.complete:  # the whole body was given and it is not a full form
                raise BadRequest("multipart body ends before its closing boundary", code="INVALID_MULTIPART")
            self._decoder.receive_data(self._next_block() or None)

    def _next_block(self) -> bytes:
        if self._remaining is None:
            return self._read(_BLOCK)
        if not self._remaining:
            return b""
        data = self._read(min(_BLOCK, self._remaining))
        if not data:
            raise IncompleteBody("body ended early", details={"expected": self._length})
        self._remaining -= len(data)
        return data


@dataclass(frozen=True)
class ReceivedPart:
    filename: str
    content_type: str
    size: int
    sha256: str


def safe_filename(raw: str) -> str:
    """The last path component of a client-supplied name; BadRequest when nothing usable is left."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", "..") or "\0" in name or len(name.encode()) > 255:
        raise BadRequest("bad file name", code="BAD_FILENAME")
    return name


def receive_multipart(
    services: Services,
    part: str,
    boundary: bytes,
    read: Reader,
    length: int,
    *,
    signed: SignedUpload | None = None,
) -> ReceivedPart:
    """Decode a multipart body of ``length`` bytes and stream its ``file`` field into ``part``.

    Raises BadRequest when there is no ``file`` field or the body is malformed,
    IncompleteBody when it ends early, PayloadTooLarge past ``uploads.max_upload_size``.
    With ``signed``, the field's name must be the signed one (BadSignature
    FILE_NAME_MISMATCH, before any byte is stored) and its size the signed size
    (PayloadTooLarge past it, BadRequest SIZE_MISMATCH short of it).
    The part is removed on any failure.
    """
    stream = FieldStream(read, boundary, FIELD, length)
    raw_name, content_type = stream.open()
    name = _allowed_name(raw_name, services.settings.uploads.allowed_extensions)
    limit = services.settings.uploads.max_upload_size
    if signed is not None:
        limit = min(limit, _signed_size(name, signed))
    services.store.create_part(part, None)
    try:
        size, digest = _write_limited(services, part, stream.chunks(), limit)
        if signed is not None and size != signed.size:
            raise BadRequest("the file is smaller than the signed size", code="SIZE_MISMATCH")
        stream.finish()
    except BaseException:
        services.store.delete_part(part)
        raise
    return ReceivedPart(name, content_type, size, digest)


def _signed_size(name: str, signed: SignedUpload) -> int:
    """The size ``signed`` allows, once the field's ``name`` is checked against it."""
    if name != signed.file_name:
        raise BadSignature("the file name is not the signed X-Filename", code="FILE_NAME_MISMATCH")
    return signed.size


def _write_limited(services: Services, part: str, chunks: Iterator[bytes], limit: int) -> tuple[int, str]:
    """Append ``chunks`` to the part, hashing them; fsync; refuse past ``limit`` bytes."""
    hasher, size = hashlib.sha256(), 0
    fd = os.open(services.store.part_path(part), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for data in chunks:
            size += len(data)
            if size > limit:
                raise PayloadTooLarge("file too large", details={"maxSize": limit})
            hasher.update(data)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        if services.store.fsync:
            offload(os.fsync, fd)
    finally:
        os.close(fd)
    return size, hasher.hexdigest()


def _allowed_name(raw: str, allowed: tuple[str, ...]) -> str:
    name = safe_filename(raw)
    if not extension_allowed(name, allowed):
        raise BadRequest("file extension not allowed", code="EXTENSION_NOT_ALLOWED")
    return name


def store_multipart_upload(
    session: Session,
    services: Services,
    *,
    account_id: uuid.UUID | None,
    boundary: bytes,
    read: Reader,
    length: int,
    signed: SignedUpload | None = None,
) -> File:
    """Receive the ``file`` field and record it as a file (and a completed upload task).
    ``signed``: the file a bound signature allows (see ``receive_multipart``). Flushes."""
    part = uuid.uuid4().hex
    received = receive_multipart(services, part, boundary, read, length, signed=signed)
    written = WrittenRange(0, received.size, received.sha256)
    return record_one_shot_upload(
        session, services, Protocol.MULTIPART, part, written,
        name=received.filename, content_type=received.content_type, account_id=account_id,
    )  # fmt: skip
