"""The multipart/form-data codec: one field of a body, decoded as the body arrives.

werkzeug's sans-I/O decoder holds one read block; other fields are skipped, so
the bytes of the wanted field can stream straight into the upload engine.
"""

from __future__ import annotations

from collections.abc import Iterator

from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, MultipartDecoder
from werkzeug.sansio.multipart import Field as FormField
from werkzeug.sansio.multipart import File as FilePart

from hmacfs.errors import BadRequest
from hmacfs.names import UNSAFE_NAME_CHARACTER
from hmacfs.storage.copying import IncompleteBody, Reader, blocks_reader

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


def safe_filename(raw: str) -> str:
    """The last path component of a client-supplied name; BadRequest when nothing usable is left."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", "..") or UNSAFE_NAME_CHARACTER.search(name) or len(name.encode()) > 255:
        raise BadRequest("bad file name", code="BAD_FILENAME")
    return name
