"""Sealing a direct part: completing its multipart upload, so that its bytes are stored once.

A part created with ``direct`` (an upload that will become a file) has an S3
multipart upload started with it (``S3BlobStore.create_part``): every write
that fills a whole slot is that upload's part number slot + 1 (``UploadPart``,
streamed as it arrives), anything else is a piece as for any part. The parts
of an open multipart upload cannot be read back, so until it is sealed a
direct part's bytes in those slots are not readable: the running hash stops
before them, and completion seals the part first (the whole part locked, so
no write runs meanwhile) and reads what is left to hash from the object.

Sealing uploads the slots that only pieces cover (copied on the store from a
piece that fills the slot, else read and uploaded: at most one slot in memory)
and completes the upload: its object, at the part's own key, holds exactly the
part's bytes. Which of a part's two sources is a slot's:

- a slot that has both an ``UploadPart`` and pieces that hold all of it takes the
  pieces unless the part is strictly newer (a tie goes to the pieces). The
  engine never gives one slot both from acknowledged writes that differ: a
  Drive chunk is always written at its own offset and length, so a slot is
  either always a part or always pieces; tus appends, so a part and pieces
  that hold the same slot are one acknowledged write and the leftovers of a
  failed one, which a client re-sends from the acknowledged offset (the newer);
- a slot with an ``UploadPart`` and pieces that do not hold all of it takes the
  part (the pieces are leftovers of failed writes), and those pieces are
  deleted *before* the completion, so none that lost remains after it.

After sealing, the object is the part's base: any piece there overlays it
(pieces written since, e.g. a chunk re-sent after a hash mismatch; those that
went into the object are deleted after the completion, and one left by a
failure holds the same bytes as the object). The ``sealed`` marker records
that the upload was completed (a completion whose marker was not written is
recognised by the object's presence).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from hmacfs.storage.blocking import concurrently
from hmacfs.storage.s3_assembly import PieceSource, upload_slot
from hmacfs.storage.s3_client import call, translated
from hmacfs.storage.s3_pieces import Direct, Piece, Segment, cover, covered_length, marker_tag

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


_MARKER_READS = 8  # slot markers read at once when sealing


@dataclass(frozen=True)
class UploadedPart:
    number: int
    etag: str
    size: int
    stored: datetime


class DirectParts(PieceSource, Protocol):
    client: S3Client
    bucket: str
    prefix: str
    slot_size: int


def slot_marker_key(part_prefix: str, number: int) -> str:
    """The object that names (its body: the ETag) the last part number ``number`` stored."""
    return f"{part_prefix}e-{number:06d}"


def uploaded_parts(
    store: DirectParts, direct: Direct, part_prefix: str, markers: Mapping[int, str]
) -> dict[int, UploadedPart]:
    """The parts of the open upload by number, each the one its slot marker names (a part
    number uploaded again may be listed once per upload, by SeaweedFS, with times of a
    second's resolution; one whose upload did not return has no marker and is left out).
    ``markers``: the listing's slot markers and the ETags it gave them (``marker_tag``: a
    marker is read only where no part matches it). FileNotFoundError when the upload is
    not open."""
    key = store.prefix + direct.storage_key
    found: dict[int, list[UploadedPart]] = {}
    with translated(f"listing the parts of {key}"):
        pages = store.client.get_paginator("list_parts").paginate(
            Bucket=store.bucket, Key=key, UploadId=direct.upload_id
        )
        for page in pages:
            for item in page.get("Parts", []):
                number = item["PartNumber"]
                uploaded = UploadedPart(number, item["ETag"], item["Size"], item["LastModified"])
                found.setdefault(number, []).append(uploaded)
    chosen: dict[int, UploadedPart] = {}
    unknown: list[int] = []
    for number, candidates in found.items():
        if number not in markers:
            continue  # no upload of this number was acknowledged
        matching = [c for c in candidates if markers[number] in _tags(c.etag)]
        if matching:
            chosen[number] = matching[-1]
        else:
            unknown.append(number)

    def acknowledged(number: int) -> str | None:
        return read_slot_marker(store, part_prefix, number)

    # The markers a listing did not settle (stores whose ETags are not MD5s), read side
    # by side: one after another, 32 of them were 0.11 s of a 256 MiB upload's last request.
    etags = concurrently(acknowledged, unknown, limit=_MARKER_READS)
    for number, etag in zip(unknown, etags, strict=True):
        if etag is not None:
            chosen.update((number, c) for c in found[number] if c.etag.strip('"') == etag.strip('"'))
    return chosen


def _tags(etag: str) -> set[str]:
    """What a marker whose body is ``etag`` (quoted or not) lists as its ETag."""
    bare = etag.strip('"')
    return {marker_tag(bare), marker_tag(f'"{bare}"')}


def read_slot_marker(store: DirectParts, part_prefix: str, number: int) -> str | None:
    """The ETag slot ``number``'s marker holds, or None when it has none."""
    marker = slot_marker_key(part_prefix, number)
    try:
        answer = call(f"reading {marker}", store.client.get_object, Bucket=store.bucket, Key=marker)
    except FileNotFoundError:
        return None
    with translated(f"reading {marker}"):
        return str(answer["Body"].read().decode())


@dataclass(frozen=True)
class Plan:
    """What sealing does: the parts kept, the slots uploaded from pieces, the pieces that
    lost to a part (deleted before the completion) and those used (deleted after)."""

    kept: list[UploadedPart]
    from_pieces: list[tuple[int, list[Segment]]]
    lost: list[str]
    used: list[str]


def plan(pieces: list[Piece], parts: dict[int, UploadedPart], size: int, slot: int) -> Plan:
    """Each slot's source (the module docstring); ValueError when a slot has neither."""
    kept: list[UploadedPart] = []
    from_pieces: list[tuple[int, list[Segment]]] = []
    lost: list[str] = []
    used: list[str] = []
    for number, start in enumerate(range(0, size, slot), start=1):
        length = min(slot, size - start)
        here = [p for p in pieces if p.offset < start + length and p.end > start]
        segments = cover(here, start, length)
        whole = covered_length(segments) == length
        part = parts.get(number)
        newer = part is not None and all(p.stored < part.stored for p in here)
        if part is not None and part.size == length and (not whole or newer):
            kept.append(part)
            lost.extend(p.key for p in here)
        elif whole:
            from_pieces.append((number, segments))
            used.extend(p.key for p in here)
        else:
            raise ValueError(f"the part has no bytes at {start + covered_length(segments)}")
    return Plan(kept, from_pieces, lost, used)


def seal(
    store: DirectParts,
    direct: Direct,
    pieces: list[Piece],
    size: int,
    *,
    part_prefix: str,
    markers: Mapping[int, str],
    delete: Callable[[list[str]], None],
) -> list[str]:
    """Complete the upload of a direct part of ``size`` bytes from its parts and ``pieces``;
    returns the pieces to delete afterwards. ``delete(keys)`` deletes objects.
    FileNotFoundError when the upload is not open."""
    parts = uploaded_parts(store, direct, part_prefix, markers)
    steps = plan(pieces, parts, size, store.slot_size)
    if steps.lost:
        delete(steps.lost)
    key = store.prefix + direct.storage_key
    done: dict[int, dict[str, Any]] = {p.number: {"PartNumber": p.number, "ETag": p.etag} for p in steps.kept}
    for number, segments in steps.from_pieces:
        done[number] = upload_slot(store, key, direct.upload_id, number, segments)
    parts_in_order = {"Parts": [done[number] for number in sorted(done)]}
    call(
        f"completing {key}", store.client.complete_multipart_upload,
        Bucket=store.bucket, Key=key, UploadId=direct.upload_id, MultipartUpload=parts_in_order,
    )  # fmt: skip
    return steps.used
