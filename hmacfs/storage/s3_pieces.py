"""How a part lives in an S3 bucket: pure functions, no I/O.

An S3 object cannot be written at an offset, and the parts of an unfinished
multipart upload cannot be read back, yet the engine writes a part's ranges in
any order, from any node, and reads them back (the running SHA-256, a re-sent
chunk compared with the stored one). So the bytes of a part are kept as
**pieces**: one object per written range, named by its offset and length,
under the part's own prefix::

    <root>parts/<part>/size-<declared size or "none">   the part exists (create_part)
    <root>parts/<part>/p/<offset:016x>-<length:016x>    bytes [offset, offset + length)

A direct part (``hmacfs.storage.s3_direct``) also has::

    <root>parts/<part>/direct-<token>-<upload id, hex>   its multipart upload, at blobs/u/<part>-<token>
    <root>parts/<part>/e-<number:06d>                    the ETag of the last UploadPart of a number
    <root>parts/<part>/sealed, promoted                  the upload was completed; made a blob
    <root>parts/<part>/ordered                           written in order, hashed on arrival (tus)

A piece is stored whole by one PUT or not at all, so it is durable when the
write returns, and any node sees it. Pieces never cross a *slot* boundary (a
multiple of the part size): when the upload completes, each slot becomes one
part of the blob's S3 multipart upload, copied by the store itself from the
piece that fills it (the common case: chunks of the part size), or assembled
from the smaller pieces that cover it.

Where pieces overlap (a write that failed half-way left some, and a retry
started elsewhere), the newest wins: a byte is read from the most recently
stored piece that holds it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from hmacfs.storage.intervals import subtract

_PIECE = re.compile(r"^p/([0-9a-f]{16})-([0-9a-f]{16})$")
_MARKER = re.compile(r"^size-([0-9]+|none)$")
SEALED = "sealed"
ORDERED = "ordered"  # a direct part written in order and hashed as it arrives: no slot copies
PROMOTED = "promoted"
_DIRECT = re.compile(r"^direct-([0-9a-f]{16})-([0-9a-f]+)$")
_SLOT = re.compile(r"^e-([0-9]{6})$")  # a slot's marker: the ETag of its last UploadPart


def part_prefix(root: str, part: str) -> str:
    return f"{root}parts/{part}/"


def piece_key(root: str, part: str, offset: int, length: int) -> str:
    return f"{part_prefix(root, part)}p/{offset:016x}-{length:016x}"


def marker_key(root: str, part: str, size: int | None) -> str:
    return f"{part_prefix(root, part)}size-{'none' if size is None else size}"


def direct_marker_key(root: str, part: str, token: str, upload_id: str) -> str:
    """The marker of the part's multipart upload (``S3BlobStore.create_part`` with ``direct``):
    its key's token and its upload id (hex, as ids may hold any character), in the name
    so that the listing every operation does finds them."""
    return f"{part_prefix(root, part)}direct-{token}-{upload_id.encode().hex()}"


def direct_key(part: str, token: str) -> str:
    """The storage key (under the root) of a direct part's multipart upload: the blob's
    key once it is completed (``S3BlobStore.promoted_key``)."""
    return f"blobs/u/{part}-{token}"


def part_of_direct_key(storage_key: str) -> str | None:
    """The part a ``direct_key`` belongs to; None for any other key."""
    match = re.match(r"^blobs/u/([A-Za-z0-9_-]{1,64})-[0-9a-f]{16}$", storage_key)
    return match[1] if match else None


@dataclass(frozen=True)
class Direct:
    """A part's multipart upload: its object's storage key and upload id."""

    storage_key: str
    upload_id: str


@dataclass(frozen=True)
class Piece:
    """A stored piece: bytes [offset, offset + length) of its part, in object ``key``."""

    key: str
    offset: int
    length: int
    stored: datetime

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class Segment:
    """Bytes [start, start + length) of a part, read from ``piece`` (at ``start - piece.offset``)."""

    piece: Piece
    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class PartListing:
    """What a listing of one part's prefix found: its pieces and its declared sizes."""

    pieces: list[Piece]
    declared: list[int | None]
    modified: datetime | None
    direct: Direct | None = None
    sealed: bool = False  # the multipart upload was completed (``S3BlobStore.seal_part``)
    promoted: bool = False  # its object was made a blob (``S3BlobStore.promote_part``)
    ordered: bool = False  # written in order, hashed as it arrives: no slot copies (tus)
    # Each slot marker's number and the ETag the listing gave its object (the MD5 of its
    # body, on stores that give MD5s: ``marker_tag``): the slots with an acknowledged
    # UploadPart, and which one, without reading a marker.
    slots: Mapping[int, str] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.pieces or self.declared)

    @property
    def size(self) -> int:
        """The declared size, or the furthest written end when that is further."""
        ends = [piece.end for piece in self.pieces]
        return max([size or 0 for size in self.declared] + ends + [0])


class Listed(NamedTuple):
    """One object of a listing."""

    key: str
    stored: datetime  # last modified
    etag: str  # without quotes


def marker_tag(etag: str) -> str:
    """The ETag a store that gives MD5s lists for a slot marker whose body is ``etag``."""
    return hashlib.md5(etag.encode(), usedforsecurity=False).hexdigest()


def parse_listing(prefix: str, objects: Iterable[Listed]) -> PartListing:
    """The pieces and markers among ``objects`` under ``prefix``."""
    pieces, declared, modified = [], [], None
    directs: list[tuple[str, Direct]] = []
    slots: dict[int, str] = {}
    sealed = promoted = ordered = False
    for key, stored, etag in objects:
        name = key[len(prefix) :]
        modified = stored if modified is None or stored > modified else modified
        if match := _PIECE.match(name):
            offset, length = int(match[1], 16), int(match[2], 16)
            pieces.append(Piece(key, offset, length, stored))
        elif match := _MARKER.match(name):
            declared.append(None if match[1] == "none" else int(match[1]))
        elif match := _SLOT.match(name):
            slots[int(match[1])] = etag
        elif name == SEALED:
            sealed = True
        elif name == ORDERED:
            ordered = True
        elif name == PROMOTED:
            promoted = True
        elif match := _DIRECT.match(name):
            upload_id = bytes.fromhex(match[2]).decode()
            directs.append((key, Direct(direct_key(prefix.split("/")[-2], match[1]), upload_id)))
    # One create_part makes at most one; should two ever exist, every node picks the same.
    direct = min(directs, key=lambda item: item[0])[1] if directs else None
    sealed = sealed and direct is not None
    return PartListing(pieces, declared, modified, direct, sealed, promoted, ordered, slots)


def split_at_slots(offset: int, length: int, slot: int) -> list[tuple[int, int]]:
    """[offset, offset + length) cut at every multiple of ``slot``: (offset, length) pairs."""
    ranges, position, end = [], offset, offset + length
    while position < end:
        stop = min(end, (position // slot + 1) * slot)
        ranges.append((position, stop - position))
        position = stop
    return ranges


def cover(pieces: list[Piece], start: int, length: int) -> list[Segment]:
    """The segments that hold [start, start + length), in order, each byte from the newest
    piece holding it (a later key wins a tie). Stops at the first byte no piece holds."""
    end = start + length
    relevant = [p for p in pieces if p.offset < end and p.end > start]
    relevant.sort(key=lambda p: (p.stored, p.key), reverse=True)
    claimed: list[tuple[int, int, Piece]] = []  # (from, to, piece), disjoint
    for piece in relevant:
        for low, high in _uncovered(max(piece.offset, start), min(piece.end, end), claimed):
            claimed.append((low, high, piece))
    claimed.sort(key=lambda item: item[0])
    segments, position = [], start
    for low, high, piece in claimed:
        if low != position:
            break
        segments.append(Segment(piece, low, high - low))
        position = high
    return segments


def _uncovered(low: int, high: int, claimed: list[tuple[int, int, Piece]]) -> list[tuple[int, int]]:
    """The parts of [low, high) that no claimed interval holds."""
    gaps: list[tuple[int, int, None]] = [(low, high, None)]
    for taken_low, taken_high, _ in claimed:
        gaps = subtract(gaps, taken_low, taken_high)
    return [(gap_low, gap_high) for gap_low, gap_high, _ in gaps]


def covered_length(segments: list[Segment]) -> int:
    return sum(segment.length for segment in segments)
